// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// The three ERC-20 calls Escrow makes. As in Channels, the return value of
/// transfer and transferFrom may be absent (see _tokenCall).
interface IEscrowToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

/// @title Escrow: ERC-20 deals paid on completion, disputes settled by a panel.
/// @notice A payer deposits an amount for a payee until a deadline. The
/// payer releases it to the payee (a fee share goes to the DApp's fund), or
/// the payee refunds it; after the deadline the payee claims it unless a
/// dispute is open. Before the deadline either side may open a dispute;
/// then only a ruling (the payee's share in basis points) signed as EIP-712
/// typed data by a majority of the deal's panel settles it.
///
/// The panel: a deal carries an ordered list of arbiters (the order in
/// which they were drawn) and a panel size k. The panel sits on the first k
/// of the list; one who does not vote in time is replaced, off-chain, by
/// the next of the list. So settle accepts the signatures of any
/// floor(k/2)+1 distinct arbiters of the list. With k equal to the list's
/// length this is a strict majority of the whole list.
///
/// Replay protection: the EIP-712 domain binds a ruling to this chain and
/// this contract, and the ruling names its deal, whose ID commits to the
/// chain, the contract, the payer and a salt the payer chose (so a payer
/// knows a deal's ID before opening it, and can draw its arbiters from it).
/// A deal is closed once, so a ruling settles at most one deal once.
contract Escrow {
    enum Status {
        None,
        Open,
        Disputed,
        Closed
    }

    struct Deal {
        address payer;
        uint64 deadline;
        uint16 feeBps;
        Status status;
        uint8 panelSize; // k: floor(k/2)+1 arbiters of the list settle
        address payee;
        address fund;
        uint256 amount;
        bytes32 panel; // keccak256(abi.encode(arbiters)), the ordered list
    }

    uint256 public constant MAX_ARBITERS = 32;
    uint16 public constant BPS = 10000;

    IEscrowToken public immutable token;
    mapping(bytes32 => Deal) public deals;
    uint256 private locked = 1;

    bytes32 public constant RULING_TYPEHASH = keccak256("Ruling(bytes32 deal,uint16 payeeBps)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public immutable DOMAIN_SEPARATOR;

    event Opened(
        bytes32 indexed id,
        address indexed payer,
        address indexed payee,
        uint256 amount,
        address fund,
        uint16 feeBps,
        uint64 deadline,
        address[] arbiters,
        uint8 panelSize
    );
    event Released(bytes32 indexed id, uint256 toPayee, uint256 fee);
    event Refunded(bytes32 indexed id, uint256 toPayer);
    event Claimed(bytes32 indexed id, uint256 toPayee, uint256 fee);
    event Disputed(bytes32 indexed id, address indexed by);
    event Settled(bytes32 indexed id, uint16 payeeBps, uint256 toPayee, uint256 toPayer, uint256 fee);

    error UnknownDeal(bytes32 id);
    error NotParty(bytes32 id, address caller);
    error DealClosed(bytes32 id);
    error DealDisputed(bytes32 id);
    error NotDisputed(bytes32 id);
    error DeadlinePassed(bytes32 id, uint64 deadline);
    error DeadlineNotPassed(bytes32 id, uint64 deadline);
    error BadDeal(string reason);
    error ZeroAmount();
    error FeeOnTransfer(uint256 expected, uint256 received);
    error WrongPanel(bytes32 id);
    error BadRuling(uint16 payeeBps);
    error BadRulingSignature(uint256 index);
    error NotArbiter(address signer);
    error DuplicateSigner(address signer);
    error NoMajority(uint256 signers, uint256 panel);
    error Reentrant();
    error TokenTransferFailed();

    modifier nonReentrant() {
        if (locked != 1) revert Reentrant();
        locked = 2;
        _;
        locked = 1;
    }

    constructor(IEscrowToken token_) {
        token = token_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("dpaas Escrow"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// @notice Opens a deal, pulling amount tokens from the caller (who must
    /// have approved this contract for them). The fee (feeBps of what the
    /// payee receives) goes to fund. The arbiters are the ordered list the
    /// panel is drawn from, panelSize (1 to the list's length) the panel's
    /// size k: floor(k/2)+1 of the list settle a dispute. Neither party may
    /// be on the list. The deal's ID is dealId(msg.sender, salt); a salt
    /// the payer used before is refused.
    function open(
        address payee,
        uint256 amount,
        uint16 feeBps,
        address fund,
        uint64 deadline,
        address[] calldata arbiters,
        uint8 panelSize,
        bytes32 salt
    ) external nonReentrant returns (bytes32 id) {
        if (payee == address(0) || payee == msg.sender) revert BadDeal("payee");
        if (amount == 0) revert ZeroAmount();
        if (feeBps > BPS) revert BadDeal("fee above 100%");
        if (feeBps > 0 && fund == address(0)) revert BadDeal("fee without fund");
        if (deadline <= block.timestamp) revert DeadlinePassed(bytes32(0), deadline);
        if (arbiters.length == 0 || arbiters.length > MAX_ARBITERS) revert BadDeal("arbiter list size");
        if (panelSize == 0 || panelSize > arbiters.length) revert BadDeal("panel size");
        for (uint256 i = 0; i < arbiters.length; i++) {
            address a = arbiters[i];
            if (a == address(0) || a == msg.sender || a == payee) revert BadDeal("arbiter");
            for (uint256 j = 0; j < i; j++) {
                if (arbiters[j] == a) revert BadDeal("duplicate arbiter");
            }
        }
        id = dealId(msg.sender, salt);
        if (deals[id].status != Status.None) revert BadDeal("deal exists");
        deals[id] = Deal({
            payer: msg.sender,
            deadline: deadline,
            feeBps: feeBps,
            status: Status.Open,
            panelSize: panelSize,
            payee: payee,
            fund: fund,
            amount: amount,
            panel: keccak256(abi.encode(arbiters))
        });
        uint256 before = token.balanceOf(address(this));
        _tokenCall(abi.encodeCall(IEscrowToken.transferFrom, (msg.sender, address(this), amount)));
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransfer(amount, received);
        emit Opened(id, msg.sender, payee, amount, fund, feeBps, deadline, arbiters, panelSize);
    }

    /// @notice The ID of the deal payer opens with salt.
    function dealId(address payer, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), payer, salt));
    }

    /// @notice The payer pays the payee (less the fee, to the fund).
    function release(bytes32 id) external nonReentrant {
        Deal storage d = _live(id);
        if (msg.sender != d.payer) revert NotParty(id, msg.sender);
        if (d.status == Status.Disputed) revert DealDisputed(id);
        d.status = Status.Closed;
        (uint256 toPayee, uint256 fee) = _payout(d, d.amount);
        emit Released(id, toPayee, fee);
    }

    /// @notice The payee gives the whole amount back to the payer.
    function refund(bytes32 id) external nonReentrant {
        Deal storage d = _live(id);
        if (msg.sender != d.payee) revert NotParty(id, msg.sender);
        d.status = Status.Closed;
        _send(d.payer, d.amount);
        emit Refunded(id, d.amount);
    }

    /// @notice After the deadline, with no dispute open, the payee takes the amount.
    function claim(bytes32 id) external nonReentrant {
        Deal storage d = _live(id);
        if (msg.sender != d.payee) revert NotParty(id, msg.sender);
        if (d.status == Status.Disputed) revert DealDisputed(id);
        if (block.timestamp < d.deadline) revert DeadlineNotPassed(id, d.deadline);
        d.status = Status.Closed;
        (uint256 toPayee, uint256 fee) = _payout(d, d.amount);
        emit Claimed(id, toPayee, fee);
    }

    /// @notice Either side freezes the deal before the deadline until a ruling settles it.
    function dispute(bytes32 id) external nonReentrant {
        Deal storage d = _live(id);
        if (msg.sender != d.payer && msg.sender != d.payee) revert NotParty(id, msg.sender);
        if (d.status == Status.Disputed) revert DealDisputed(id);
        if (block.timestamp >= d.deadline) revert DeadlinePassed(id, d.deadline);
        d.status = Status.Disputed;
        emit Disputed(id, msg.sender);
    }

    /// @notice Settles a disputed deal with a ruling signed by a majority of
    /// its panel: floor(k/2)+1 distinct arbiters of the list given at open
    /// (arbiters, in the same order), k the deal's panel size. payeeBps of the
    /// amount to the payee (less the fee), the rest back to the payer.
    /// Anyone may submit it.
    function settle(bytes32 id, uint16 payeeBps, address[] calldata arbiters, bytes[] calldata signatures)
        external
        nonReentrant
    {
        Deal storage d = _live(id);
        if (d.status != Status.Disputed) revert NotDisputed(id);
        if (keccak256(abi.encode(arbiters)) != d.panel) revert WrongPanel(id);
        if (payeeBps > BPS) revert BadRuling(payeeBps);
        bytes32 digest = rulingDigest(id, payeeBps);
        uint256 seen; // bit i: arbiters[i] signed (at most MAX_ARBITERS)
        for (uint256 k = 0; k < signatures.length; k++) {
            address signer = _recover(digest, signatures[k]);
            if (signer == address(0)) revert BadRulingSignature(k);
            uint256 i = 0;
            while (i < arbiters.length && arbiters[i] != signer) i++;
            if (i == arbiters.length) revert NotArbiter(signer);
            if (seen & (1 << i) != 0) revert DuplicateSigner(signer);
            seen |= 1 << i;
        }
        if (signatures.length < d.panelSize / 2 + 1) revert NoMajority(signatures.length, d.panelSize);
        d.status = Status.Closed;
        uint256 share = (d.amount * payeeBps) / BPS;
        uint256 back = d.amount - share;
        (uint256 toPayee, uint256 fee) = _payout(d, share);
        if (back > 0) _send(d.payer, back);
        emit Settled(id, payeeBps, toPayee, back, fee);
    }

    /// @notice The EIP-712 digest an arbiter signs for a ruling.
    function rulingDigest(bytes32 id, uint16 payeeBps) public view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, keccak256(abi.encode(RULING_TYPEHASH, id, payeeBps))));
    }

    function _live(bytes32 id) private view returns (Deal storage d) {
        d = deals[id];
        if (d.status == Status.None) revert UnknownDeal(id);
        if (d.status == Status.Closed) revert DealClosed(id);
    }

    /// @dev Pays gross to the payee, less feeBps of it to the fund.
    function _payout(Deal storage d, uint256 gross) private returns (uint256 toPayee, uint256 fee) {
        fee = (gross * d.feeBps) / BPS;
        toPayee = gross - fee;
        if (toPayee > 0) _send(d.payee, toPayee);
        if (fee > 0) _send(d.fund, fee);
    }

    function _send(address to, uint256 amount) private {
        _tokenCall(abi.encodeCall(IEscrowToken.transfer, (to, amount)));
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

    /// @dev The safe-transfer pattern of Channels: no return data or an
    /// ABI-encoded true is success; a token's revert is passed on as is.
    function _tokenCall(bytes memory data) private {
        address t = address(token);
        if (t.code.length == 0) revert TokenTransferFailed();
        (bool ok, bytes memory ret) = t.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length != 0 && (ret.length != 32 || abi.decode(ret, (uint256)) != 1)) revert TokenTransferFailed();
    }
}
