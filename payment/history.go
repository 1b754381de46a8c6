package payment

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
)

// BlockNumber is the number of the chain's latest block.
func (p *Payments) BlockNumber(ctx context.Context) (uint64, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return 0, fmt.Errorf("payment: block number: %w", err)
	}
	defer cancel()
	n, err := p.be.BlockNumber(ctx)
	if err != nil {
		return 0, fmt.Errorf("payment: block number: %w", p.chainErr(err))
	}
	return n, nil
}

// BalanceAt is who's token balance at the end of block number block. The
// chain must still hold that block's state: a dev chain does; a public
// chain's endpoint must be an archive node for old blocks.
func (p *Payments) BalanceAt(ctx context.Context, who common.Address, block uint64) (*big.Int, error) {
	ctx, cancel, err := p.opCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("payment: balance at: %w", err)
	}
	defer cancel()
	opts := &bind.CallOpts{Context: ctx, BlockNumber: new(big.Int).SetUint64(block)}
	b, err := bind.Call(p.token, opts, tokenABI.PackBalanceOf(who), tokenABI.UnpackBalanceOf)
	if err != nil {
		return nil, fmt.Errorf("payment: balance of %s at block %d: %w", who, block, p.chainErr(err))
	}
	return b, nil
}
