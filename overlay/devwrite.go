package overlay

import (
	"errors"
	"net"

	"github.com/kadlan/kadlan/tap/ether"
)

// writeDev writes a plain frame to the device, with an empty virtio-net
// header when the device expects one. It takes wmu, so it may be called
// with or without mu held.
func (e *Engine) writeDev(frame []byte) {
	e.wmu.Lock()
	b := frame
	if e.cfg.VnetHdr {
		e.wbuf = append(append(e.wbuf[:0], make([]byte, ether.VnetHdrLen)...), frame...)
		b = e.wbuf
	}
	_, err := e.dev.Write(b)
	e.wmu.Unlock()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		e.logs.Log("write", "overlay: write %s: %v", e.dev.Name(), err)
	}
}

// writeWhole writes b (a virtio-net header and frame) to the device.
func (e *Engine) writeWhole(b []byte) {
	e.wmu.Lock()
	_, err := e.dev.Write(b)
	e.wmu.Unlock()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		e.logs.Log("write", "overlay: write %s: %v", e.dev.Name(), err)
	}
}

// writeGSO delivers a received super-frame (whole = header + frame, the
// header already checked by checkGSO) whole or segmented into seg, which
// it returns grown. It does not need mu: link readers call it after
// releasing it.
func (e *Engine) writeGSO(whole []byte, h ether.VnetHdr, frame, seg []byte) []byte {
	if !h.IsGSO() {
		if err := ether.FinishChecksum(frame, h); err != nil {
			e.counters.offloadDrops.Add(1)
			return seg
		}
		e.writeDev(frame)
		return seg
	}
	if e.cfg.VnetHdr {
		h.Put(whole) // with the recomputed header length
		e.writeWhole(whole)
		return seg
	}
	e.counters.segmented.Add(1)
	var err error
	seg, err = ether.SegmentTCP(frame, h, seg, func(s []byte) error { e.writeDev(s); return nil })
	if err != nil {
		e.counters.offloadDrops.Add(1)
		e.logs.Log("segment", "overlay: segmenting a super-frame: %v", err)
	}
	return seg
}
