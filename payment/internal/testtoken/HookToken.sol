// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title HookToken: a test-only ERC-20 that calls back into its caller.
/// @notice On every transfer out of a contract (transfer), it makes the
/// call set by setHook (target, data) once, as a malicious token or a
/// token with receive hooks could, and records whether that reentrant
/// call succeeded and what it reverted with. exec lets the token itself
/// act as an account (approve, open a deal...), so the reentrant call
/// comes from a deal's party. Anyone may mint. Never deploy it outside
/// tests.
contract HookToken {
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    address public hookTarget;
    bytes public hookData;
    bool public hookCalled;
    bool public hookSucceeded;
    bytes public hookResult;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function setHook(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
        hookCalled = false;
    }

    /// exec makes this token call target with data, as an account would.
    function exec(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        if (hookTarget != address(0) && !hookCalled) {
            hookCalled = true;
            (bool ok, bytes memory ret) = hookTarget.call(hookData);
            hookSucceeded = ok;
            hookResult = ret;
        }
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "allowance");
        allowance[from][msg.sender] = allowed - value;
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        require(balanceOf[from] >= value, "balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
