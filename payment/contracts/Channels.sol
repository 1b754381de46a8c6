// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// The two ERC-20 calls Channels makes. Channels never relies on their
/// return value being present (see _tokenCall), so tokens that return
/// nothing (USDT and other early ERC-20s) work too.
interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title Channels: unidirectional ERC-20 payment channels with EIP-712 vouchers.
/// @notice A payer locks a deposit for a payee until an expiry. Off-chain,
/// the payer signs cumulative vouchers "channel C owes the payee A in
/// total". Before the expiry the payee redeems the latest voucher and is
/// paid only the increase over what was already redeemed. After the expiry
/// the payer reclaims whatever was not redeemed.
///
/// Replay protection: the EIP-712 domain binds a signature to this chain
/// and this contract, and the voucher names its channel, whose ID itself
/// commits to the chain, the contract, both parties and a nonce.
contract Channels {
    struct Channel {
        address payer;
        address payee;
        uint64 expiry;
        uint256 deposit;
        uint256 redeemed;
    }

    IERC20 public immutable token;
    mapping(bytes32 => Channel) public channels;
    uint256 public nonce;

    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channel,uint256 amount)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public immutable DOMAIN_SEPARATOR;

    event Opened(bytes32 indexed id, address indexed payer, address indexed payee, uint256 deposit, uint64 expiry);
    event ToppedUp(bytes32 indexed id, uint256 deposit, uint64 expiry);
    event Redeemed(bytes32 indexed id, address indexed payee, uint256 amount, uint256 paid);
    event Reclaimed(bytes32 indexed id, address indexed payer, uint256 refund);

    error UnknownChannel(bytes32 id);
    error NotPayer(bytes32 id, address caller);
    error NotPayee(bytes32 id, address caller);
    error BadPayee();
    error ZeroDeposit();
    error ExpiryInPast(uint64 expiry, uint256 now_);
    error ExpiryShortened(uint64 expiry, uint64 requested);
    error Expired(bytes32 id, uint64 expiry);
    error NotExpired(bytes32 id, uint64 expiry);
    error NotAboveRedeemed(bytes32 id, uint256 amount, uint256 redeemed);
    error AboveDeposit(bytes32 id, uint256 amount, uint256 deposit);
    error BadSignature(bytes32 id);
    error TokenTransferFailed();

    constructor(IERC20 token_) {
        token = token_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("dpaas Channels"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// @notice Opens a channel to payee, pulling deposit tokens from the
    /// caller (who must have approved this contract for them).
    function open(address payee, uint256 deposit, uint64 expiry) external returns (bytes32 id) {
        if (payee == address(0) || payee == msg.sender) revert BadPayee();
        if (deposit == 0) revert ZeroDeposit();
        if (expiry <= block.timestamp) revert ExpiryInPast(expiry, block.timestamp);
        id = keccak256(abi.encode(block.chainid, address(this), msg.sender, payee, nonce++));
        channels[id] = Channel({payer: msg.sender, payee: payee, expiry: expiry, deposit: deposit, redeemed: 0});
        _pull(msg.sender, deposit);
        emit Opened(id, msg.sender, payee, deposit, expiry);
    }

    /// @notice Adds to the deposit and optionally pushes the expiry later.
    function topUp(bytes32 id, uint256 amount, uint64 expiry) external {
        Channel storage c = channels[id];
        if (c.payer == address(0)) revert UnknownChannel(id);
        if (c.payer != msg.sender) revert NotPayer(id, msg.sender);
        if (block.timestamp >= c.expiry) revert Expired(id, c.expiry);
        if (expiry < c.expiry) revert ExpiryShortened(c.expiry, expiry);
        c.deposit += amount;
        c.expiry = expiry;
        if (amount > 0) _pull(msg.sender, amount);
        emit ToppedUp(id, c.deposit, expiry);
    }

    /// @notice The payee cashes the payer's cumulative voucher for amount.
    function redeem(bytes32 id, uint256 amount, bytes calldata signature) external {
        Channel storage c = channels[id];
        if (c.payer == address(0)) revert UnknownChannel(id);
        if (c.payee != msg.sender) revert NotPayee(id, msg.sender);
        if (block.timestamp >= c.expiry) revert Expired(id, c.expiry);
        if (amount <= c.redeemed) revert NotAboveRedeemed(id, amount, c.redeemed);
        if (amount > c.deposit) revert AboveDeposit(id, amount, c.deposit);
        if (_signer(id, amount, signature) != c.payer) revert BadSignature(id);
        uint256 paid = amount - c.redeemed;
        c.redeemed = amount;
        _tokenCall(abi.encodeCall(IERC20.transfer, (c.payee, paid)));
        emit Redeemed(id, c.payee, amount, paid);
    }

    /// @notice After the expiry the payer takes back what was not redeemed.
    function reclaim(bytes32 id) external {
        Channel storage c = channels[id];
        if (c.payer == address(0)) revert UnknownChannel(id);
        if (c.payer != msg.sender) revert NotPayer(id, msg.sender);
        if (block.timestamp < c.expiry) revert NotExpired(id, c.expiry);
        uint256 refund = c.deposit - c.redeemed;
        c.deposit = c.redeemed;
        if (refund > 0) _tokenCall(abi.encodeCall(IERC20.transfer, (c.payer, refund)));
        emit Reclaimed(id, c.payer, refund);
    }

    /// @notice The EIP-712 digest the payer signs for a voucher.
    function voucherDigest(bytes32 id, uint256 amount) public view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, keccak256(abi.encode(VOUCHER_TYPEHASH, id, amount))));
    }

    function _signer(bytes32 id, uint256 amount, bytes calldata signature) private view returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        // Reject the high-s twin of every signature (EIP-2) so a voucher has one encoding.
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) return address(0);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(voucherDigest(id, amount), v, r, s);
    }

    function _pull(address from, uint256 amount) private {
        _tokenCall(abi.encodeCall(IERC20.transferFrom, (from, address(this), amount)));
    }

    /// @dev The safe-transfer pattern: call the token at a low level and
    /// accept either no return data (tokens that return nothing) or an
    /// ABI-encoded true; anything else, or a token address without code,
    /// is TokenTransferFailed. A revert of the token is passed on as is, so
    /// its reason (InsufficientBalance...) reaches the caller.
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
