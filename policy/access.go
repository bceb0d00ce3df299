package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"

	"github.com/sampan-exchange/sampan/ident"
)

// Grant is one access right to a service: a subsystem or a global group,
// for the whole service or for one endpoint pattern.
type Grant struct {
	Subsystem *ident.ClientID
	Group     *ident.GroupID
	// Endpoint is the pattern ("GET /companies/*") or empty for the whole
	// service. Which patterns a request matches is decided by the caller,
	// which knows the pattern syntax; the policy decides whether one of
	// them is granted to this client.
	Endpoint string
}

// Access is a service's access rights compiled to Cedar: one permit per
// right, nothing else, so anything not granted is denied.
type Access struct {
	ps   *cedar.PolicySet
	text string
	svc  cedar.EntityUID

	// Decisions made, by client, groups and endpoints: the rights are
	// fixed once compiled, so a decision holds for as long as they do.
	// Evaluating the policies cost about 3 % of a gateway's CPU and 4 %
	// of its allocation per exchange. About accessCacheMax are kept.
	decided kept[string, bool] // by accessKey
}

// accessCacheMax bounds the decisions an Access keeps. The keys are the
// service's clients times the group sets they have been seen with times
// the endpoint patterns their requests matched; when they reach the
// bound (group sets that changed with the configuration stay until
// then), all are forgotten and decisions are kept afresh.
const accessCacheMax = 10000

// CompileAccess compiles the access rights of one service.
func CompileAccess(svc ident.ServiceID, grants []Grant) (*Access, error) {
	a := &Access{ps: cedar.NewPolicySet(), svc: cedar.NewEntityUID("Service", cedar.String(svc.String()))}
	a.decided.max = accessCacheMax
	var b strings.Builder
	for i, g := range grants {
		var who string
		switch {
		case g.Subsystem != nil && g.Group == nil:
			q, err := cedarString(g.Subsystem.String())
			if err != nil {
				return nil, fmt.Errorf("access[%d]: %w", i, err)
			}
			who = "principal == Client::" + q
		case g.Group != nil && g.Subsystem == nil:
			q, err := cedarString(g.Group.String())
			if err != nil {
				return nil, fmt.Errorf("access[%d]: %w", i, err)
			}
			who = "principal in Group::" + q
		default:
			return nil, fmt.Errorf("access[%d]: a right names one subsystem or one group", i)
		}
		sq, err := cedarString(svc.String())
		if err != nil {
			return nil, err
		}
		text := fmt.Sprintf("permit (%s, action == Action::\"call\", resource == Service::%s)", who, sq)
		if g.Endpoint != "" {
			eq, err := cedarString(g.Endpoint)
			if err != nil {
				return nil, fmt.Errorf("access[%d]: %w", i, err)
			}
			text += " when { context.endpoints.contains(" + eq + ") }"
		}
		text += ";"
		var p cedar.Policy
		if err := p.UnmarshalCedar([]byte(text)); err != nil {
			return nil, fmt.Errorf("access[%d]: compile: %w", i, err)
		}
		id := fmt.Sprintf("access/%d", i)
		a.ps.Add(cedar.PolicyID(id), &p)
		fmt.Fprintf(&b, "@id(%q)\n%s\n", id, text)
	}
	a.text = b.String()
	return a, nil
}

// cedarString quotes s as a Cedar string literal; identifiers and
// patterns with control characters are refused.
func cedarString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%q holds a control character", s)
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// Text returns the compiled policies.
func (a *Access) Text() string { return a.text }

// Allowed decides whether client, a member of groups, may make a request
// that matches the given endpoint patterns. Deny unless a right permits;
// a policy that cannot be evaluated denies.
func (a *Access) Allowed(client ident.ClientID, groups []ident.GroupID, endpoints []string) bool {
	if a == nil {
		return false
	}
	key := accessKey(client, groups, endpoints)
	if allowed, ok := a.decided.get(key); ok {
		return allowed
	}
	allowed := a.decide(client, groups, endpoints)
	a.decided.put(key, allowed)
	return allowed
}

// accessKey names what a decision is made on: each string prefixed with
// its length and a colon, each list with its count and a semicolon, so
// that no two different inputs share a key.
func accessKey(client ident.ClientID, groups []ident.GroupID, endpoints []string) string {
	b := appendPrefixed(make([]byte, 0, 128), client.String())
	b = strconv.AppendInt(b, int64(len(groups)), 10)
	b = append(b, ';')
	for _, g := range groups {
		b = appendPrefixed(b, g.String())
	}
	b = strconv.AppendInt(b, int64(len(endpoints)), 10)
	b = append(b, ';')
	for _, e := range endpoints {
		b = appendPrefixed(b, e)
	}
	return string(b)
}

// decide evaluates the policies.
func (a *Access) decide(client ident.ClientID, groups []ident.GroupID, endpoints []string) bool {
	principal := cedar.NewEntityUID("Client", cedar.String(client.String()))
	parents := make([]cedar.EntityUID, len(groups))
	for i, g := range groups {
		parents[i] = cedar.NewEntityUID("Group", cedar.String(g.String()))
	}
	entities := cedar.EntityMap{principal: cedar.Entity{UID: principal, Parents: cedar.NewEntityUIDSet(parents...)}}
	eps := make([]cedar.Value, len(endpoints))
	for i, e := range endpoints {
		eps[i] = cedar.String(e)
	}
	dec, diag := cedar.Authorize(a.ps, entities, cedar.Request{
		Principal: principal, Action: actionCall, Resource: a.svc,
		Context: cedar.NewRecord(cedar.RecordMap{"endpoints": cedar.NewSet(eps...)}),
	})
	return dec == cedar.Allow && len(diag.Errors) == 0
}
