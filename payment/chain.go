package payment

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/dpaas/dpaas/payment/contracts"
)

// chainBackend is what Payments needs from a chain: an ethclient.Client
// on a JSON-RPC endpoint, or a DevChain's in-process client.
type chainBackend interface {
	bind.ContractBackend
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
	ChainID(ctx context.Context) (*big.Int, error)
	BalanceAt(ctx context.Context, account common.Address, block *big.Int) (*big.Int, error)
	BlockNumber(ctx context.Context) (uint64, error)
}

// waitReceipt polls for the receipt of txHash every poll until it exists,
// ctx ends or stop closes. A reverted transaction is an error wrapping
// ErrReverted.
func waitReceipt(ctx context.Context, be chainBackend, txHash common.Hash, poll time.Duration, stop <-chan struct{}) (*types.Receipt, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w", txHash, ctx.Err())
		case <-stop:
			return nil, fmt.Errorf("wait for %s: %w", txHash, ErrClosed)
		case <-t.C:
		}
		r, err := be.TransactionReceipt(ctx, txHash)
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				return r, fmt.Errorf("transaction %s: %w", txHash, ErrReverted)
			}
			return r, nil
		}
		if !errors.Is(err, ethereum.NotFound) && !strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("receipt of %s: %w", txHash, err)
		}
		t.Reset(poll)
	}
}

var (
	tokenABI    = contracts.NewToken()
	channelsABI = contracts.NewChannels()
	escrowABI   = contracts.NewEscrow()
	fundABI     = contracts.NewFund()
)

// revertError turns a chain error into one that wraps the matching
// sentinel when the revert data names one of the contracts' errors.
func revertError(err error) error {
	if err == nil {
		return nil
	}
	var de rpc.DataError
	if !errors.As(err, &de) {
		return err
	}
	hexData, ok := de.ErrorData().(string)
	if !ok {
		return err
	}
	raw, decErr := hexutil.Decode(hexData)
	if decErr != nil || len(raw) < 4 {
		return err
	}
	if v, uerr := tokenABI.UnpackError(raw); uerr == nil {
		switch e := v.(type) {
		case *contracts.TokenInsufficientBalance:
			return fmt.Errorf("%s holds %v, needs %v: %w", common.Address(e.From), e.Balance, e.Needed, ErrInsufficientFunds)
		case *contracts.TokenInsufficientAllowance:
			return fmt.Errorf("allowance %v, needs %v: %w", e.Allowance, e.Needed, ErrAllowance)
		}
		return fmt.Errorf("token refused (%T): %w", v, ErrReverted)
	}
	if v, uerr := channelsABI.UnpackError(raw); uerr == nil {
		switch e := v.(type) {
		case *contracts.ChannelsUnknownChannel:
			return fmt.Errorf("contract: channel %s: %w", common.Hash(e.Id), ErrUnknownChannel)
		case *contracts.ChannelsNotPayer:
			return fmt.Errorf("contract: %s: %w", e.Caller, ErrNotPayer)
		case *contracts.ChannelsNotPayee:
			return fmt.Errorf("contract: %s: %w", e.Caller, ErrNotPayee)
		case *contracts.ChannelsExpired:
			return fmt.Errorf("contract: channel expired at %d: %w", e.Expiry, ErrExpired)
		case *contracts.ChannelsNotExpired:
			return fmt.Errorf("contract: channel expires at %d: %w", e.Expiry, ErrNotExpired)
		case *contracts.ChannelsNotAboveRedeemed:
			return fmt.Errorf("contract: amount %v, already redeemed %v: %w", e.Amount, e.Redeemed, ErrNotAboveBest)
		case *contracts.ChannelsAboveDeposit:
			return fmt.Errorf("contract: amount %v, deposit %v: %w", e.Amount, e.Deposit, ErrAboveDeposit)
		case *contracts.ChannelsBadSignature:
			return fmt.Errorf("contract: %w", ErrBadSignature)
		case *contracts.ChannelsExpiryInPast, *contracts.ChannelsExpiryShortened:
			return fmt.Errorf("contract (%T): %w", v, ErrBadExpiry)
		case *contracts.ChannelsZeroDeposit:
			return fmt.Errorf("contract: zero deposit: %w", ErrBadAmount)
		}
		return fmt.Errorf("channels contract refused (%T): %w", v, ErrReverted)
	}
	if v, uerr := escrowABI.UnpackError(raw); uerr == nil {
		return escrowError(v)
	}
	if v, uerr := fundABI.UnpackError(raw); uerr == nil {
		return fundError(v)
	}
	// Revert data of no contract here: a string reason or a custom error
	// of another token (require(balance >= value, "...") in USDT-style
	// tokens, for one). Still a revert.
	return fmt.Errorf("%w: %w", err, ErrReverted)
}

// maxUnixSeconds is the latest Unix second time.Unix represents without
// overflow in every use here (t.Unix() round-trips, Add does not wrap):
// far beyond any real expiry, yet on-chain uint64 values above it exist
// (an expiry of 2^64-1 means "never").
const maxUnixSeconds = 1 << 62

// unixTime decodes an on-chain uint64 timestamp, saturating at
// maxUnixSeconds instead of wrapping negative.
func unixTime(sec uint64) time.Time {
	if sec > maxUnixSeconds {
		sec = maxUnixSeconds
	}
	return time.Unix(int64(sec), 0)
}

// unixSeconds encodes t as an on-chain uint64 timestamp; times before 1970
// are 0.
func unixSeconds(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s)
}

// answered reports whether err came back from the endpoint (a JSON-RPC
// error, or an HTTP status other than 200) rather than from failing to
// reach it.
func answered(err error) bool {
	var re rpc.Error
	var he rpc.HTTPError
	return errors.As(err, &re) || errors.As(err, &he)
}
