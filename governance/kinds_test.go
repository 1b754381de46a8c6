package governance

import (
	"testing"

	"github.com/dpaas/dpaas/internal/govern"
)

// TestKindsMatchCore: the public action kinds and electorates are the
// ones the core acts on.
func TestKindsMatchCore(t *testing.T) {
	pairs := [][2]string{
		{ActionSetParam, govern.ActionSetParam},
		{ActionAdmitMember, govern.ActionAdmitMember},
		{ActionRemoveMember, govern.ActionRemoveMember},
		{ActionApproveRelease, govern.ActionApproveRelease},
		{Members, govern.ElectorateMembers},
		{Tokens, govern.ElectorateToken},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("public %q, core %q", p[0], p[1])
		}
	}
}
