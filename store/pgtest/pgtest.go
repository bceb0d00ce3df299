// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// binaries installed on the machine (Debian's postgresql package). When
// they are missing the test is skipped, unless SAMPAN_REQUIRE_POSTGRES is
// set (CI sets it), in which case it fails.
package pgtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
)

// bin finds a PostgreSQL program on PATH or in Debian's versioned
// directories (newest first).
func bin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start starts a server for the test and returns a DSN for it; the server
// stops and its files go when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	initdb, pgctl := bin("initdb"), bin("pg_ctl")
	if initdb == "" || pgctl == "" {
		if os.Getenv("SAMPAN_REQUIRE_POSTGRES") != "" {
			t.Fatal("PostgreSQL binaries (initdb, pg_ctl) not found, and SAMPAN_REQUIRE_POSTGRES is set")
		}
		t.Skip("PostgreSQL binaries not found; install Debian's postgresql to run this test")
	}
	dir, err := os.MkdirTemp("", "sampan-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL refuses to run as root: run it as the postgres user (or
	// nobody) then.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatal("running as root and no postgres or nobody user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
	}
	run(initdb, "-D", data, "-U", "sampan", "-A", "trust", "--no-sync", "-E", "UTF8")
	port := 20000 + rand.IntN(20000)
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses='' -F", sock, port)
	run(pgctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start")
	t.Cleanup(func() {
		cmd := exec.Command(pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		cmd.Run()
	})
	return fmt.Sprintf("postgres://sampan@/postgres?host=%s&port=%d&sslmode=disable", sock, port)
}
