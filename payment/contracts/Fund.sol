// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// The three ERC-20 calls Fund makes. As in Channels and Escrow, the return
/// value of transfer and transferFrom may be absent (see _tokenCall).
interface IFundToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

/// @title Fund: a DApp's budget, paid out per epoch on a committee's word.
/// @notice Anyone deposits tokens (deposit, or a plain ERC-20 transfer to
/// this address, an escrow fee for one). Once per epoch, a payout table
/// (recipients and amounts) signed as EIP-712 typed data by a strict
/// majority of the committee pays each recipient, if its total fits the
/// epoch budget and the balance. The committee and the budget change only
/// by a message its strict majority signs, carrying the governance nonce.
///
/// Typed data, in the domain "dpaas Fund" version 1 of this chain and
/// this contract:
///   Payout(uint64 epoch,bytes32 tableHash), where tableHash is
///     keccak256(abi.encode(recipients, amounts)), an address[] and a
///     uint256[] of equal length;
///   SetCommittee(address[] committee,uint64 nonce);
///   SetBudget(uint256 budget,uint64 nonce).
///
/// Replay protection: the domain binds every message to this chain and
/// this contract; a payout's epoch must be above the last paid one, and a
/// governance message must carry the current nonce, which it increments.
///
/// Its custom errors are named apart from Escrow's and Channels' (no
/// selector is shared), so a client maps each revert to one meaning.
contract Fund {
    uint256 public constant MAX_COMMITTEE = 64;

    IFundToken public immutable token;
    /// keccak256(abi.encode(committee)): what payout checks the given list against.
    bytes32 public committeeHash;
    /// The most tokens one epoch's payout may move.
    uint256 public budget;
    /// The last epoch paid out; 0 before the first payout.
    uint64 public lastEpoch;
    /// The governance nonce the next SetCommittee or SetBudget must carry.
    uint64 public nonce;
    address[] private members;
    uint256 private locked = 1;

    bytes32 public constant PAYOUT_TYPEHASH = keccak256("Payout(uint64 epoch,bytes32 tableHash)");
    bytes32 public constant SET_COMMITTEE_TYPEHASH = keccak256("SetCommittee(address[] committee,uint64 nonce)");
    bytes32 public constant SET_BUDGET_TYPEHASH = keccak256("SetBudget(uint256 budget,uint64 nonce)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public immutable DOMAIN_SEPARATOR;

    event Deposited(address indexed from, uint256 amount);
    event PaidOut(uint64 indexed epoch, bytes32 tableHash, uint256 total, uint256 recipients);
    event CommitteeChanged(uint64 indexed nonce, bytes32 committeeHash, address[] committee);
    event BudgetChanged(uint64 indexed nonce, uint256 budget);

    error BadCommittee(string reason);
    error WrongCommittee();
    error BadTable(string reason);
    error StaleEpoch(uint64 epoch, uint64 lastEpoch);
    error OverBudget(uint256 total, uint256 budget);
    error FundTooLow(uint256 total, uint256 balance);
    error StaleNonce(uint64 given, uint64 expected);
    error InvalidSignature(uint256 index);
    error NotMember(address signer);
    error RepeatedSigner(address signer);
    error NoQuorum(uint256 signers, uint256 committee);
    error NothingToDeposit();
    error DepositShort(uint256 expected, uint256 received);
    error ReentrantCall();
    error TransferFailed();

    modifier nonReentrant() {
        if (locked != 1) revert ReentrantCall();
        locked = 2;
        _;
        locked = 1;
    }

    /// @param token_ the ERC-20 the fund holds and pays in.
    /// @param committee_ the first committee: 1 to MAX_COMMITTEE distinct
    /// non-zero addresses, in the order signers will pass them.
    /// @param budget_ the most one epoch may pay out.
    constructor(IFundToken token_, address[] memory committee_, uint256 budget_) {
        token = token_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("dpaas Fund"), keccak256("1"), block.chainid, address(this))
        );
        _setCommittee(committee_);
        budget = budget_;
    }

    /// @notice The current committee, in order.
    function committee() external view returns (address[] memory) {
        return members;
    }

    /// @notice Pulls amount tokens from the caller (who must have approved
    /// this contract for them) into the fund.
    function deposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert NothingToDeposit();
        uint256 before = token.balanceOf(address(this));
        _tokenCall(abi.encodeCall(IFundToken.transferFrom, (msg.sender, address(this), amount)));
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert DepositShort(amount, received);
        emit Deposited(msg.sender, amount);
    }

    /// @notice Pays epoch's table: amounts[i] to recipients[i] (a zero
    /// amount is skipped), given signatures of Payout(epoch, tableHash) by
    /// a strict majority of the committee (passed in its order). The epoch
    /// must be above the last one paid, the total within the budget and
    /// the balance. Anyone may submit it.
    function payout(
        uint64 epoch,
        address[] calldata recipients,
        uint256[] calldata amounts,
        address[] calldata committee_,
        bytes[] calldata signatures
    ) external nonReentrant {
        if (recipients.length != amounts.length) revert BadTable("lengths differ");
        if (epoch <= lastEpoch) revert StaleEpoch(epoch, lastEpoch);
        uint256 total = 0;
        for (uint256 i = 0; i < recipients.length; i++) {
            if (recipients[i] == address(0)) revert BadTable("zero recipient");
            total += amounts[i];
        }
        if (total > budget) revert OverBudget(total, budget);
        bytes32 hash = keccak256(abi.encode(recipients, amounts));
        _checkQuorum(payoutDigest(epoch, hash), committee_, signatures);
        uint256 balance = token.balanceOf(address(this));
        if (total > balance) revert FundTooLow(total, balance);
        lastEpoch = epoch;
        for (uint256 i = 0; i < recipients.length; i++) {
            if (amounts[i] > 0) _tokenCall(abi.encodeCall(IFundToken.transfer, (recipients[i], amounts[i])));
        }
        emit PaidOut(epoch, hash, total, recipients.length);
    }

    /// @notice Replaces the committee, given signatures of
    /// SetCommittee(next, nonce) by a strict majority of the current one.
    function setCommittee(
        address[] calldata next,
        uint64 nonce_,
        address[] calldata committee_,
        bytes[] calldata signatures
    ) external nonReentrant {
        if (nonce_ != nonce) revert StaleNonce(nonce_, nonce);
        _checkQuorum(setCommitteeDigest(next, nonce_), committee_, signatures);
        nonce = nonce_ + 1;
        _setCommittee(next);
        emit CommitteeChanged(nonce_, committeeHash, next);
    }

    /// @notice Sets the epoch budget, given signatures of
    /// SetBudget(next, nonce) by a strict majority of the committee.
    function setBudget(uint256 next, uint64 nonce_, address[] calldata committee_, bytes[] calldata signatures)
        external
        nonReentrant
    {
        if (nonce_ != nonce) revert StaleNonce(nonce_, nonce);
        _checkQuorum(setBudgetDigest(next, nonce_), committee_, signatures);
        nonce = nonce_ + 1;
        budget = next;
        emit BudgetChanged(nonce_, next);
    }

    /// @notice The EIP-712 digest a committee member signs for a payout.
    function payoutDigest(uint64 epoch, bytes32 hash) public view returns (bytes32) {
        return _digest(keccak256(abi.encode(PAYOUT_TYPEHASH, epoch, hash)));
    }

    /// @notice The payout table's hash: keccak256(abi.encode(recipients, amounts)).
    function tableHash(address[] calldata recipients, uint256[] calldata amounts) external pure returns (bytes32) {
        return keccak256(abi.encode(recipients, amounts));
    }

    /// @notice The EIP-712 digest a committee member signs to replace the committee.
    function setCommitteeDigest(address[] calldata next, uint64 nonce_) public view returns (bytes32) {
        // EIP-712 encodes an address[] as the hash of its 32-byte words.
        return _digest(keccak256(abi.encode(SET_COMMITTEE_TYPEHASH, keccak256(abi.encodePacked(next)), nonce_)));
    }

    /// @notice The EIP-712 digest a committee member signs to set the budget.
    function setBudgetDigest(uint256 next, uint64 nonce_) public view returns (bytes32) {
        return _digest(keccak256(abi.encode(SET_BUDGET_TYPEHASH, next, nonce_)));
    }

    function _digest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, structHash));
    }

    function _setCommittee(address[] memory next) private {
        if (next.length == 0 || next.length > MAX_COMMITTEE) revert BadCommittee("size");
        for (uint256 i = 0; i < next.length; i++) {
            if (next[i] == address(0)) revert BadCommittee("zero member");
            for (uint256 j = 0; j < i; j++) {
                if (next[j] == next[i]) revert BadCommittee("duplicate member");
            }
        }
        committeeHash = keccak256(abi.encode(next));
        members = next;
    }

    /// @dev Checks that the committee is the current one and that the
    /// signatures of digest come from a strict majority of it, each
    /// member at most once (bit i of seen: committee_[i] signed).
    function _checkQuorum(bytes32 digest, address[] calldata committee_, bytes[] calldata signatures) private view {
        if (keccak256(abi.encode(committee_)) != committeeHash) revert WrongCommittee();
        uint256 seen;
        for (uint256 k = 0; k < signatures.length; k++) {
            address signer = _recover(digest, signatures[k]);
            if (signer == address(0)) revert InvalidSignature(k);
            uint256 i = 0;
            while (i < committee_.length && committee_[i] != signer) i++;
            if (i == committee_.length) revert NotMember(signer);
            if (seen & (1 << i) != 0) revert RepeatedSigner(signer);
            seen |= 1 << i;
        }
        if (signatures.length * 2 <= committee_.length) revert NoQuorum(signatures.length, committee_.length);
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        // Reject the high-s twin of every signature (EIP-2).
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) return address(0);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// @dev The safe-transfer pattern of Channels and Escrow: no return
    /// data or an ABI-encoded true is success; a token's revert is passed
    /// on as is.
    function _tokenCall(bytes memory data) private {
        address t = address(token);
        if (t.code.length == 0) revert TransferFailed();
        (bool ok, bytes memory ret) = t.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length != 0 && (ret.length != 32 || abi.decode(ret, (uint256)) != 1)) revert TransferFailed();
    }
}
