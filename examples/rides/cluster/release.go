package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/governance"
)

// PublishUI makes web the DApp's web UI the way a DApp ships a release:
// the first node adds it as a UnixFS directory, and the nodes, members of
// the DApp, approve by a vote of the given length a release with that UI
// and the running executable's SHA-256 for this platform (so that
// instances running this build are listed as verified). It returns the
// directory's CID once every node lists the release. From then on every
// instance's server serves the UI from the release, through its gateway,
// fetching the files from the other instances if it does not hold them.
func PublishUI(ctx context.Context, nodes []*dapp.Node, web fs.FS, version string, vote time.Duration) (string, error) {
	if len(nodes) == 0 {
		return "", errors.New("rides: publish UI: no nodes")
	}
	root, err := nodes[0].Blobs().AddDir(ctx, web)
	if err != nil {
		return "", fmt.Errorf("rides: publish UI: %w", err)
	}
	exe, err := executableSHA256()
	if err != nil {
		return "", fmt.Errorf("rides: publish UI: %w", err)
	}
	rel := governance.Release{
		Version:     version,
		Executables: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: exe},
		UI:          root.String(),
	}
	id, err := nodes[0].Governance().Propose(ctx, governance.Proposal{
		Title:   "Release " + version + " of the rides web UI",
		End:     time.Now().Add(vote),
		Actions: []governance.Action{governance.ApproveRelease(rel)},
	})
	if err != nil {
		return "", fmt.Errorf("rides: publish UI: %w", err)
	}
	for _, n := range nodes {
		// The proposal reaches the other instances within moments.
		for {
			err := n.Governance().Vote(ctx, id, governance.For())
			if err == nil {
				break
			}
			if !errors.Is(err, governance.ErrNotFound) {
				return "", fmt.Errorf("rides: publish UI: vote of %s: %w", n.Account(), err)
			}
			if err := pause(ctx); err != nil {
				return "", err
			}
		}
	}
	for _, n := range nodes {
		for !approved(ctx, n, rel) {
			if err := pause(ctx); err != nil {
				return "", fmt.Errorf("rides: publish UI: release %s not approved on %s: %w", version, n.ID(), err)
			}
		}
	}
	return rel.UI, nil
}

func approved(ctx context.Context, n *dapp.Node, rel governance.Release) bool {
	rs, err := n.Governance().Releases(ctx)
	if err != nil {
		return false
	}
	for _, r := range rs {
		if r.Version == rel.Version && r.UI == rel.UI {
			return true
		}
	}
	return false
}

func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}

// executableSHA256 is the SHA-256 of the running executable, in hex: what
// an instance's heartbeat declares of its build.
func executableSHA256() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
