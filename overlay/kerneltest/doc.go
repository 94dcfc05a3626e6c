// Package kerneltest runs the overlay data path between real Linux TAP
// devices, each in a private network namespace the test creates, with the
// kernels' own ARP, NDP, ping and UDP on top. Its tests need root and skip
// otherwise.
package kerneltest
