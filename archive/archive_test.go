package archive

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/pki"
)

func init() { scryptN, maxScryptN = 1<<10, 1<<10 } // fast tests and fuzzing

// sample writes a small archive of three files and returns it with the
// signing key.
func sample(t testing.TB, pass []byte) ([]byte, crypto.Signer) {
	return sampleSized(t, pass, 200_000)
}

// sampleSized is sample with sub/b.db of size bytes.
func sampleSized(t testing.TB, pass []byte, size int) ([]byte, crypto.Signer) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"a.key": "secret", "sub/b.db": strings.Repeat("x", size), "empty": ""}
	var src []Source
	for _, p := range []string{"a.key", "sub/b.db", "empty"} {
		d := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(d), 0o700)
		if err := os.WriteFile(d, []byte(files[p]), 0o600); err != nil {
			t.Fatal(err)
		}
		src = append(src, Source{Path: p, Disk: d})
	}
	key, err := pki.GenerateKey(pki.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, src, WriteOptions{NodeKind: "authority", NodeID: "VN", Key: key, Passphrase: pass, Meta: map[string]string{"conf_serial": "7"}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), key
}

func trustOnly(key crypto.Signer) func(*Manifest, crypto.PublicKey) error {
	want, _ := x509.MarshalPKIXPublicKey(key.Public())
	return func(_ *Manifest, pub crypto.PublicKey) error {
		got, _ := x509.MarshalPKIXPublicKey(pub)
		if !bytes.Equal(got, want) {
			return ErrUntrusted
		}
		return nil
	}
}

func TestRoundTrip(t *testing.T) {
	for _, pass := range [][]byte{nil, []byte("correct horse")} {
		b, key := sample(t, pass)
		dst := filepath.Join(t.TempDir(), "out")
		m, err := Extract(bytes.NewReader(b), dst, ReadOptions{Passphrase: pass, Trust: trustOnly(key)})
		if err != nil {
			t.Fatalf("encrypted=%v: %v", pass != nil, err)
		}
		if len(m.Files) != 3 || m.Meta["conf_serial"] != "7" || m.NodeID != "VN" {
			t.Errorf("manifest %+v", m)
		}
		got, _ := os.ReadFile(filepath.Join(dst, "sub", "b.db"))
		if len(got) != 200_000 {
			t.Errorf("sub/b.db has %d bytes", len(got))
		}
		if fi, _ := os.Stat(filepath.Join(dst, "a.key")); fi == nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("a.key mode %v", fi)
		}
		if pass != nil && bytes.Contains(b, []byte("secret")) {
			t.Error("an encrypted archive shows its content")
		}
	}
}

// TestRefusals: every alteration of an archive is refused, and Extract
// leaves nothing behind.
func TestRefusals(t *testing.T) {
	plain, key := sample(t, nil)
	enc, _ := sample(t, []byte("pass"))
	other, _ := pki.GenerateKey(pki.Ed25519)
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 1
		return c
	}
	// Where a file's content sits in the plain tar: after its header.
	at := bytes.Index(plain, []byte("secret"))
	for _, tc := range []struct {
		name  string
		b     []byte
		o     ReadOptions
		check func(error) bool
	}{
		{"untrusted signer", plain, ReadOptions{Trust: trustOnly(other)}, func(err error) bool { return errors.Is(err, ErrUntrusted) }},
		{"content altered", flip(plain, at), ReadOptions{Trust: trustOnly(key)}, nil},
		{"manifest altered", flip(plain, bytes.Index(plain, []byte(`"VN"`))+1), ReadOptions{Trust: trustOnly(key)}, nil},
		{"plain truncated", plain[:len(plain)/2], ReadOptions{Trust: trustOnly(key)}, nil},
		{"plain cut before the last file", plain[:at+3], ReadOptions{Trust: trustOnly(key)}, nil},
		{"encrypted without passphrase", enc, ReadOptions{Trust: trustOnly(key)}, func(err error) bool { return errors.Is(err, ErrEncrypted) }},
		{"wrong passphrase", enc, ReadOptions{Passphrase: []byte("wrong"), Trust: trustOnly(key)}, func(err error) bool { return errors.Is(err, ErrPassphrase) }},
		{"encrypted truncated at a chunk boundary", enc[:chunkBoundary(t, enc)], ReadOptions{Passphrase: []byte("pass"), Trust: trustOnly(key)}, nil},
		{"encrypted truncated", enc[:len(enc)-10], ReadOptions{Passphrase: []byte("pass"), Trust: trustOnly(key)}, nil},
		{"encrypted chunk altered", flip(enc, len(enc)/2), ReadOptions{Passphrase: []byte("pass"), Trust: trustOnly(key)}, nil},
		{"encrypted header altered", flip(enc, len(encMagic)+12), ReadOptions{Passphrase: []byte("pass"), Trust: trustOnly(key)}, nil},
		{"data after the final chunk", append(bytes.Clone(enc), 0), ReadOptions{Passphrase: []byte("pass"), Trust: trustOnly(key)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out")
			_, err := Extract(bytes.NewReader(tc.b), dst, tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.check != nil && !tc.check(err) {
				t.Errorf("error %v", err)
			}
			if _, serr := os.Stat(dst); !os.IsNotExist(serr) {
				t.Errorf("%s left behind after %v", dst, err)
			}
		})
	}
}

// chunkBoundary returns the offset where an encrypted archive's last
// chunk starts: cutting there drops exactly the final chunk.
func chunkBoundary(t *testing.T, enc []byte) int {
	hl := int(enc[len(encMagic)])<<8 | int(enc[len(encMagic)+1])
	off := len(encMagic) + 2 + hl
	last := off
	for off < len(enc) {
		last = off
		l := int(enc[off+1])<<24 | int(enc[off+2])<<16 | int(enc[off+3])<<8 | int(enc[off+4])
		off += 5 + l
	}
	if last <= len(encMagic)+2+hl {
		t.Fatal("archive has one chunk")
	}
	return last
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", `a\b`, "c:x", "a\x00b", strings.Repeat("a/", 20) + "x", strings.Repeat("a", 600)} {
		if CheckPath(p) == nil {
			t.Errorf("CheckPath(%q) accepted", p)
		}
	}
	for _, p := range []string{"registry.db", "log/tile/0/x000", "sign/VN_GOV_MOF.crt"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q): %v", p, err)
		}
	}
}

func TestWriteRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link"))
	key, _ := pki.GenerateKey(pki.Ed25519)
	_, err := Write(&bytes.Buffer{}, []Source{{Path: "link", Disk: filepath.Join(dir, "link")}}, WriteOptions{NodeKind: "gateway", Key: key})
	if err == nil {
		t.Fatal("archived a symlink")
	}
}

func TestManifestChecks(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := func() *Manifest {
		return &Manifest{Format: Format, NodeKind: "gateway", Files: []File{{Path: "a", Size: 1, Mode: 0o600, SHA256: sum}}}
	}
	if err := good().check(); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(m *Manifest)
	}{
		{"format", func(m *Manifest) { m.Format = "sampan-archive/2" }},
		{"node kind", func(m *Manifest) { m.NodeKind = "printer" }},
		{"twice", func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) }},
		{"file and directory", func(m *Manifest) { m.Files = append(m.Files, File{Path: "a/b", Mode: 0o600, SHA256: sum}) }},
		{"setuid", func(m *Manifest) { m.Files[0].Mode = 0o4755 }},
		{"negative size", func(m *Manifest) { m.Files[0].Size = -1 }},
		{"bad digest", func(m *Manifest) { m.Files[0].SHA256 = "abc" }},
		{"absolute", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }},
		{"too many files", func(m *Manifest) {
			for i := range MaxFiles {
				m.Files = append(m.Files, File{Path: "f" + strconv.Itoa(i), SHA256: sum})
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			if m.check() == nil {
				t.Error("accepted")
			}
		})
	}
}
