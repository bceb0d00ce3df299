package conf

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidateNamesBothPositions: an item given twice in a list is
// refused with the positions of both.
func TestValidateNamesBothPositions(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"member twice", func(c *Config) { c.Members = append(c.Members, c.Members[0]) }, "members[1].id duplicates members[0].id"},
		{"subsystem twice", func(c *Config) { c.Members[0].Subsystems = append(c.Members[0].Subsystems, "x", "business-registry") },
			"members[0].subsystems[2] duplicates members[0].subsystems[0]"},
		{"gateway twice", func(c *Config) { c.Gateways = append(c.Gateways, c.Gateways[0]) }, "gateways[1].id duplicates gateways[0].id"},
		{"gateway client twice", func(c *Config) { c.Gateways[0].Clients = append(c.Gateways[0].Clients, c.Gateways[0].Clients[0]) },
			"gateways[0].clients[1] duplicates gateways[0].clients[0]"},
		{"group twice", func(c *Config) { c.GlobalGroups = append(c.GlobalGroups, c.GlobalGroups[0]) }, "global_groups[1].id duplicates global_groups[0].id"},
		{"group member twice", func(c *Config) {
			c.GlobalGroups[0].Members = append(c.GlobalGroups[0].Members, c.GlobalGroups[0].Members[0])
		}, "global_groups[0].members[1] duplicates global_groups[0].members[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := testWorld(t)
			tc.mod(c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDecodeRefusesAmbiguousKeys: a document with a key given twice, or
// in other case than the field's, is refused.
func TestDecodeRefusesAmbiguousKeys(t *testing.T) {
	c, _, _ := testWorld(t)
	good, _ := json.Marshal(c)
	if _, err := Decode(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(string(good), `"serial":7`, `"serial":7,"serial":8`, 1),
		strings.Replace(string(good), `"serial":7`, `"Serial":7`, 1),
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("accepted %.80s…", bad)
		}
	}
}
