// Package linkbench holds benchmarks of the overlay data path over real
// libp2p streams between two in-process hosts on loopback (TCP+Noise+yamux
// and QUIC), kept apart from package overlay so that its tests stay light.
package linkbench
