package payment

import (
	"context"
	"fmt"
	"math/big"
	"net/http"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// RemoteDevChain is a DevChain served by another process (for example
// the examples/devchain program), reached over JSON-RPC: its description
// and its faucet. It is safe for concurrent use.
type RemoteDevChain struct {
	url       string
	rc        *rpc.Client
	transport *http.Transport
	info      DevChainInfo
}

// DialDevChain reaches the DevChain served at url and reads its
// description (dpaas_info). An endpoint that does not answer fails with
// ErrChainUnreachable; one that answers but is not a served DevChain, with
// ErrNotDevChain.
func DialDevChain(ctx context.Context, url string) (*RemoteDevChain, error) {
	r := &RemoteDevChain{url: url, transport: http.DefaultTransport.(*http.Transport).Clone()}
	rc, err := rpc.DialOptions(ctx, url, rpc.WithHTTPClient(&http.Client{Transport: r.transport}))
	if err != nil {
		r.transport.CloseIdleConnections()
		return nil, fmt.Errorf("payment: dial dev chain: %v: %w", err, ErrChainUnreachable)
	}
	r.rc = rc
	info, err := devInfo(ctx, rc, url)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("payment: dial dev chain: %w", err)
	}
	r.info = info
	return r, nil
}

// devInfo asks the endpoint for dpaas_info. The error wraps
// ErrChainUnreachable when the endpoint did not answer, ErrNotDevChain
// when it answered without the method.
func devInfo(ctx context.Context, rc *rpc.Client, url string) (DevChainInfo, error) {
	var raw devInfoJSON
	if err := rc.CallContext(ctx, &raw, "dpaas_info"); err != nil {
		if !answered(err) {
			return DevChainInfo{}, fmt.Errorf("cannot reach chain at %s: %v: %w", url, err, ErrChainUnreachable)
		}
		return DevChainInfo{}, fmt.Errorf("%s: dpaas_info: %v: %w", url, err, ErrNotDevChain)
	}
	if raw.ChainID == nil || raw.Token == (common.Address{}) || raw.Channels == (common.Address{}) {
		return DevChainInfo{}, fmt.Errorf("%s: dpaas_info answered without chain ID or contracts: %w", url, ErrNotDevChain)
	}
	return DevChainInfo{ChainID: raw.ChainID.ToInt(), Token: raw.Token, Channels: raw.Channels, Escrow: raw.Escrow, Persistent: raw.Persistent}, nil
}

// URL is the endpoint's address.
func (r *RemoteDevChain) URL() string { return r.url }

// Info is what the dev chain said about itself when dialled.
func (r *RemoteDevChain) Info() DevChainInfo {
	i := r.info
	i.ChainID = new(big.Int).Set(i.ChainID)
	return i
}

// ChainID is the dev chain's chain ID.
func (r *RemoteDevChain) ChainID() *big.Int { return new(big.Int).Set(r.info.ChainID) }

// Token is the address of the dev chain's ERC-20 token.
func (r *RemoteDevChain) Token() common.Address { return r.info.Token }

// Channels is the address of the dev chain's payment-channel contract.
func (r *RemoteDevChain) Channels() common.Address { return r.info.Channels }

// Escrow is the address of the dev chain's escrow contract (zero for a
// dev chain that has none).
func (r *RemoteDevChain) Escrow() common.Address { return r.info.Escrow }

// Fund asks the dev chain's faucet (dpaas_fund) for DevGas ether for gas
// and tokens (smallest unit; nil or zero mints none), as DevChain.Fund.
func (r *RemoteDevChain) Fund(ctx context.Context, to common.Address, tokens *big.Int) error {
	if tokens == nil {
		tokens = new(big.Int)
	}
	if tokens.Sign() < 0 {
		return fmt.Errorf("payment: fund %s: %v tokens: %w", to, tokens, ErrBadAmount)
	}
	var out map[string]*hexutil.Big
	if err := r.rc.CallContext(ctx, &out, "dpaas_fund", to, (*hexutil.Big)(tokens)); err != nil {
		if !answered(err) {
			return fmt.Errorf("payment: fund %s: cannot reach chain at %s: %v: %w", to, r.url, err, ErrChainUnreachable)
		}
		return fmt.Errorf("payment: fund %s: %w", to, err)
	}
	return nil
}

// Close drops the connection.
func (r *RemoteDevChain) Close() error {
	if r.rc != nil {
		r.rc.Close()
	}
	r.transport.CloseIdleConnections()
	return nil
}
