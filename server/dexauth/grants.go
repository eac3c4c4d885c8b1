package dexauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dexidp/dex/storage"
)

// A grant is one sign-in of one client: a refresh token, and the offline session of the identity
// that sign-in made (identity and sso.identity give every sign-in a user id of its own). Dex refuses
// a refresh token past the policy's limits but keeps both rows, and nothing in Dex removes them, so
// storage would hold every sign-in ever made; endGrant and collectGrants remove them.
const (
	grantIdle     = 30 * 24 * time.Hour // a refresh token unused this long ends its grant
	grantLifetime = 90 * 24 * time.Hour // and so does a grant this old
	collectEvery  = time.Hour
)

func grantExpired(rt storage.RefreshToken, now time.Time) bool {
	return now.Sub(rt.LastUsed) >= grantIdle || now.Sub(rt.CreatedAt) >= grantLifetime
}

// endGrant removes a grant's refresh token and its offline session. A session still holding
// another client's token (not one TraceKit's connectors made) keeps that token.
func endGrant(st storage.Storage, rt storage.RefreshToken) error {
	if err := st.DeleteRefresh(rt.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete refresh token: %w", err)
	}
	var empty bool
	err := st.UpdateOfflineSessions(rt.Claims.UserID, rt.ConnectorID, func(old storage.OfflineSessions) (storage.OfflineSessions, error) {
		if ref, ok := old.Refresh[rt.ClientID]; ok && ref.ID == rt.ID {
			delete(old.Refresh, rt.ClientID)
		}
		empty = len(old.Refresh) == 0
		return old, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop the grant from its offline session: %w", err)
	}
	if empty {
		if err := st.DeleteOfflineSessions(rt.Claims.UserID, rt.ConnectorID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("delete offline session: %w", err)
		}
	}
	return nil
}

// collectGrants removes expired grants now and every collectEvery until ctx ends.
func (s *Server) collectGrants(ctx context.Context) {
	for {
		n, err := s.dropExpiredGrants()
		if err != nil {
			s.logger.Error("remove expired sign-ins", "err", err, "removed", n)
		} else if n > 0 {
			s.logger.Info("removed expired sign-ins", "grants", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(collectEvery):
		}
	}
}

// dropExpiredGrants ends every grant past the refresh policy's limits and says how many it ended.
func (s *Server) dropExpiredGrants() (int, error) {
	tokens, err := s.storage.ListRefreshTokens()
	if err != nil {
		return 0, fmt.Errorf("list refresh tokens: %w", err)
	}
	now, n := s.now(), 0
	for _, rt := range tokens {
		if !grantExpired(rt, now) {
			continue
		}
		if err := endGrant(s.storage, rt); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
