// Package interop tests Sampan with clients written by others: SOAP
// clients that know nothing of Sampan call the sandbox's services through
// its gateways as they would call X-Road security servers. It holds only
// tests; the client programs they drive live in its subdirectories.
package interop
