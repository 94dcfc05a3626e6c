// Package social is implicit social switching: broadcasts and multicasts
// spread to the members a node recently exchanged unicast frames with
// (Touch), bounded by a fan-out, a hop limit and a total budget carried in
// the header, de-duplicated by broadcast ID. It is pure (no I/O, no clock:
// callers pass the time) and generic over the node key, so the switch and
// the simulator run the very same code.
package social
