// Package netrec holds a kadlan network's identity and its signed records:
// NetworkID (SHA-256 over the owner's Ed25519 key and a nonce), Definition,
// Certificate, Revocation and Announcement, the Hello that opens a member
// link, their DHT keys and kad-dht validator, and the derivation of members'
// MAC, IPv6 and IPv4 addresses. Encodings are versioned, canonical binary;
// Parse functions are strict and verify signatures.
//
// The package is pure: no I/O, no goroutines, no clock of its own (callers
// pass the time; RecordValidator needs its Now), which overlay's
// TestPurePackages checks. Register the validator with kad-dht:
//
//	kaddht.NamespacedValidator(netrec.Namespace, netrec.RecordValidator{Now: time.Now})
package netrec
