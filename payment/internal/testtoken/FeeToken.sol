// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title FeeToken: a test-only fee-on-transfer ERC-20.
/// @notice Every transfer and transferFrom burns 1% of the value, so the
/// recipient receives less than was sent, as in some deflationary tokens.
/// Anyone may mint. Never deploy it outside tests.
contract FeeToken {
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
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
        uint256 burnt = value / 100;
        balanceOf[from] -= value;
        balanceOf[to] += value - burnt;
        totalSupply -= burnt;
        emit Transfer(from, to, value - burnt);
    }
}
