package authority

import (
	"context"
	"database/sql"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ident"
)

// Limits on what the management API accepts, beyond the bound on a
// request body (maxAPIBody) and on the signed configuration
// (conf.MaxDocumentSize). docs/operating.md lists them with those of the
// policy package.
const (
	maxNameLen           = 255   // members[].name
	maxDescriptionLen    = 500   // global group description
	maxReasonLen         = 500   // agreement status reason
	maxGroupMembers      = 10000 // global group members
	maxGatewayClients    = 1000  // gateway clients
	maxSubsystemGateways = 16    // gateways a subsystem names as its providers
	maxInboundClients    = 10000 // federation inbound_clients
	maxAnchorKeys        = 8     // federation anchor keys
	maxURLLen            = 2048  // federation anchor URL
	maxKeyIDLen          = 128   // federation anchor key id
)

// checkText checks a free-text field: valid UTF-8, no control
// characters, between min and max bytes.
func checkText(field, s string, min, max int) error {
	if len(s) < min || len(s) > max {
		if min > 0 {
			return fmt.Errorf("%w: %s: must be %d to %d bytes", errInvalid, field, min, max)
		}
		return fmt.Errorf("%w: %s: at most %d bytes", errInvalid, field, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s: not valid UTF-8", errInvalid, field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s: holds the control character %U", errInvalid, field, r)
		}
	}
	if min > 0 && len(s) > 0 && isBlank(s) {
		return fmt.Errorf("%w: %s: must not be blank", errInvalid, field)
	}
	return nil
}

func isBlank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// checkList checks a list's length and that no item is given twice
// (identifiers compared as ident.Fold does), naming both positions.
func checkList[T fmt.Stringer](field string, items []T, max int) error {
	if len(items) > max {
		return fmt.Errorf("%w: %s: more than %d items", errInvalid, field, max)
	}
	seen := make(map[string]int, len(items))
	for i, it := range items {
		k := ident.Fold(it.String())
		if j, dup := seen[k]; dup {
			return fmt.Errorf("%w: %s[%d] duplicates %s[%d] (%s)", errInvalid, field, i, field, j, it)
		}
		seen[k] = i
	}
	return nil
}

// caseTwin returns the registered id in table that differs from id only
// in case, or "".
func caseTwin(ctx context.Context, tx *sql.Tx, table, id string) (string, error) {
	var other string
	err := tx.QueryRowContext(ctx, `SELECT id FROM `+table+` WHERE lower(id) = ? AND id <> ? LIMIT 1`, ident.Fold(id), id).Scan(&other)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return other, err
}

// refuseTwin refuses id when table holds one differing only in case.
func refuseTwin(ctx context.Context, tx *sql.Tx, table, field, id string) error {
	other, err := caseTwin(ctx, tx, table, id)
	if err != nil {
		return err
	}
	if other != "" {
		return fmt.Errorf("%w: %s: %s differs only in case from the registered %s", errConflict, field, id, other)
	}
	return nil
}
