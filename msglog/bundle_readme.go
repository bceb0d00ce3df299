package msglog

import (
	"fmt"
	"strings"
)

// bundleReadmeText explains, for a reader with common tools, how to check
// each file of an evidence bundle.
func bundleReadmeText(r *Record, index, size uint64, stamped bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Evidence of exchange %s

Logged by gateway %s (%s side) for client %s calling %s
(%s %s), status %d, request received %s, response complete %s.

Check everything at once with

    sampan log verify-bundle .

or file by file as below.

## Files

| file | what it is |
|---|---|
| record.json | the log entry: ids, parties, times, SHA-256 digests of the signed heads and bodies, both signatures, signer fingerprints |
| leaf-index.txt, leaf-hash.txt | its position in the log (%d) and its RFC 6962 leaf hash: the leaf's data is D = SHA-256(record.json), its hash SHA-256(0x00 ‖ D) |
| checkpoint.txt | the log's signed checkpoint (C2SP signed note) for tree size %d |
| checkpoint.pub | the gateway's note verifier key for checkpoints |
| inclusion-proof.json | RFC 6962 inclusion proof of the leaf in that tree (hex hashes) |
| request.jws, response.jws | the two message signatures (compact JWS, detached payload; or a batch signature, see step 4) |
| request-signer.pem, response-signer.pem | the signers' certificates, issued by their instance's CA |
`, r.XRoadID, r.Gateway, r.Side, r.Client, r.Service, r.Method, r.Path, r.Status,
		r.RequestAt.Format("2006-01-02T15:04:05Z"), r.ResponseAt.Format("2006-01-02T15:04:05Z"), index, size)
	if stamped {
		b.WriteString(`| stamped-checkpoint.txt | an earlier checkpoint that already contained the record |
| consistency-proof.json | RFC 6962 consistency proof from it to checkpoint.txt |
| timestamp.tsr | RFC 3161 time-stamp token over stamped-checkpoint.txt |
| tsa.pem | the time-stamping authority's certificate |
`)
	} else {
		b.WriteString("\nNo time-stamp covers this record yet: export again after the gateway's next time-stamp.\n")
	}
	b.WriteString(`
## By hand

1. The leaf hash: ` + "`(printf '\\x00'; sha256sum record.json | cut -c1-64 | xxd -r -p) | sha256sum`" + `
   equals leaf-hash.txt.
2. The inclusion proof: hash the leaf up the tree with the hashes in
   inclusion-proof.json as RFC 6962 §2.1.1 describes; the result must be
   the root hash on the third line of checkpoint.txt (base64).
3. The checkpoint's signature: a C2SP signed note; any signed-note
   verifier (for example golang.org/x/mod/sumdb/note) with checkpoint.pub.
4. The message signatures: each JWS is detached; its payload is the three
   lines "request (or response) head SHA-256", "body SHA-256" and "signer
   certificate SHA-256" from record.json, joined with newlines. Any JWS
   library (EdDSA or ES256) verifies it with the public key of the
   matching *-signer.pem; ` + "`openssl x509 -in request-signer.pem -noout -text`" + `
   shows the member it was issued to.
`)
	if strings.Contains(r.RequestSignature, "~") || strings.Contains(r.ResponseSignature, "~") {
		b.WriteString(`
   A signature of the form JWS~i~n~path was made for a batch of n
   messages at once: the payload P above is leaf i of an RFC 6962 tree
   (leaf hash SHA-256(0x00 ‖ P)); path is the base64url concatenation of
   its inclusion proof's 32-byte hashes. Hash the leaf up the tree as in
   step 2 to a root R; the JWS is detached over the text
   "sampan-batch-v1", the lowercase hex of R and n, joined with newlines.
`)
	}
	if r.Version >= 3 {
		b.WriteString(`
   What the request signature covers: request_head_sha256 is the SHA-256
   of a text rebuilt from record.json alone, its lines joined with "\n"
   (no final newline): "` + RequestHeadVersion + `"; method; service;
   path "?" query; then "x-road-client:", "x-road-service:", "x-road-id:",
   "x-road-userid:", "x-road-issue:", "x-road-purpose:",
   "x-road-legal-basis:" and "x-road-represented-party:", each followed by
   the record's client, service, x_road_id, user_id, issue, purpose,
   legal_basis and represented_party (empty when absent); "signed-at:"
   request_signed_at; "nonce:" request_nonce; "headers:"
   request_headers_sha256 (the digest of the other signed headers).
   request_signed_headers names every header the signature covers.
`)
	}
	if stamped {
		b.WriteString(`5. The time-stamp:

       openssl ts -verify -token_in -in timestamp.tsr -data stamped-checkpoint.txt \
         -CAfile CA-of-the-authority.pem -untrusted tsa.pem

   (the authority's CA certificate is in its instance's shared
   configuration and at its /ca.pem). The consistency proof shows that
   checkpoint.txt extends stamped-checkpoint.txt, so the record existed
   at the time in the token.
`)
	}
	return b.String()
}
