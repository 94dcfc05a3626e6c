package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/peer"
)

// savedNetwork is the file format of a joined network.
type savedNetwork struct {
	Version     int           `json:"version"`
	Network     NetworkID     `json:"network"`
	Self        peer.ID       `json:"self"`
	Interface   string        `json:"interface,omitempty"`
	Joined      time.Time     `json:"joined"`
	LastIPv4    netip.Addr    `json:"last_ipv4,omitzero"`
	Definition  []byte        `json:"definition,omitempty"`
	Certificate []byte        `json:"certificate,omitempty"`
	Revocation  []byte        `json:"revocation,omitempty"`
	Members     []savedMember `json:"members,omitempty"`
}

type savedMember struct {
	Address      peer.ID   `json:"address"`
	Certificate  []byte    `json:"certificate,omitempty"`
	Announcement []byte    `json:"announcement,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
}

const savedVersion = 1

// networksDir is where joined networks live under a state directory.
func networksDir(stateDir string) string { return filepath.Join(stateDir, "networks") }

// NetworkFile is the path of network id's state under stateDir.
func NetworkFile(stateDir string, id NetworkID) string {
	return filepath.Join(networksDir(stateDir), id.String()+".json")
}

func marshalOpt(r interface{ Marshal() ([]byte, error) }, isNil bool) []byte {
	if isNil {
		return nil
	}
	b, err := r.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// Save writes the membership to NetworkFile(stateDir, m.ID) atomically with
// mode 0600, creating the directory (0700) if needed. Records are stored in
// their signed wire form and verified again on Load.
func (m *Membership) Save(stateDir string) error {
	if err := os.MkdirAll(networksDir(stateDir), 0o700); err != nil {
		return fmt.Errorf("overlay: save: %w", err)
	}
	s := savedNetwork{Version: savedVersion, Network: m.ID, Self: m.Self, Interface: m.Interface, Joined: m.Joined, LastIPv4: m.LastIPv4,
		Definition:  marshalOpt(m.Def, m.Def == nil),
		Certificate: marshalOpt(m.Cert, m.Cert == nil),
		Revocation:  marshalOpt(m.Revocation, m.Revocation == nil)}
	for p, mem := range m.members {
		if mem.Certificate == nil && !m.authorized(p, mem, time.Time{}) {
			continue // pending entries are not saved (see MaxPending)
		}
		s.Members = append(s.Members, savedMember{Address: p, LastSeen: mem.LastSeen,
			Certificate:  marshalOpt(mem.Certificate, mem.Certificate == nil),
			Announcement: marshalOpt(mem.Announcement, mem.Announcement == nil)})
	}
	slices.SortFunc(s.Members, func(a, b savedMember) int { return strings.Compare(string(a.Address), string(b.Address)) })
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("overlay: save: %w", err)
	}
	return atomicfile.WriteFile(NetworkFile(stateDir, m.ID), append(b, '\n'), 0o600)
}

// LoadMembership reads one saved network and verifies every record in it;
// a record that no longer verifies is an error (the file was tampered with).
func LoadMembership(path string) (*Membership, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("overlay: load: %w", err)
	}
	var s savedNetwork
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("overlay: load %s: %w", path, err)
	}
	if s.Version != savedVersion {
		return nil, fmt.Errorf("overlay: load %s: version %d, want %d", path, s.Version, savedVersion)
	}
	if err := s.Self.Validate(); err != nil {
		return nil, fmt.Errorf("overlay: load %s: self: %w", path, err)
	}
	m := NewMembership(s.Network, s.Self, s.Joined)
	m.Joined, m.Interface, m.LastIPv4 = s.Joined, s.Interface, s.LastIPv4
	wrap := func(what string, err error) error { return fmt.Errorf("overlay: load %s: %s: %w", path, what, err) }
	if s.Definition != nil {
		d, err := ParseDefinition(s.Definition)
		if err == nil {
			_, err = m.SetDefinition(d)
		}
		if err != nil {
			return nil, wrap("definition", err)
		}
	}
	if s.Certificate != nil {
		c, err := ParseCertificate(s.Certificate)
		if err == nil && c.Member != s.Self {
			err = errors.New("not this node's")
		}
		if err == nil {
			_, err = m.AddCertificate(c)
		}
		if err != nil {
			return nil, wrap("certificate", err)
		}
	}
	if s.Revocation != nil {
		r, err := ParseRevocation(s.Revocation)
		if err == nil {
			_, err = m.SetRevocation(r)
		}
		if err != nil {
			return nil, wrap("revocation", err)
		}
	}
	for _, sm := range s.Members {
		if err := sm.Address.Validate(); err != nil || sm.Address == s.Self {
			return nil, wrap("member", fmt.Errorf("bad address %q", sm.Address))
		}
		mem := m.member(sm.Address)
		mem.LastSeen = sm.LastSeen
		if sm.Certificate != nil {
			c, err := ParseCertificate(sm.Certificate)
			if err == nil && c.Member != sm.Address {
				err = errors.New("for another member")
			}
			if err == nil {
				_, err = m.AddCertificate(c)
			}
			if err != nil {
				return nil, wrap("member certificate", err)
			}
		}
		if sm.Announcement != nil {
			a, err := ParseAnnouncement(sm.Announcement)
			if err == nil && a.Member != sm.Address {
				err = errors.New("for another member")
			}
			if err == nil {
				_, err = m.AddAnnouncement(a)
			}
			if err != nil {
				return nil, wrap("member announcement", err)
			}
		}
	}
	return m, nil
}

// LoadError says why the saved network in one file could not be loaded.
type LoadError struct {
	Network string // the file's name without .json: the network ID, if the name was not changed
	Err     error
}

// LoadMemberships reads every network saved under stateDir. A missing
// directory means none. Files that fail to load are returned as LoadErrors
// while the others are still returned. Temporary files that a crash left
// behind (see atomicfile) are removed first.
func LoadMemberships(stateDir string) ([]*Membership, []LoadError) {
	dir := networksDir(stateDir)
	atomicfile.RemoveStale(dir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []LoadError{{Network: "*", Err: fmt.Errorf("overlay: load: %w", err)}}
	}
	var out []*Membership
	var errs []LoadError
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		base := strings.TrimSuffix(name, ".json")
		m, err := LoadMembership(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, LoadError{Network: base, Err: err})
			continue
		}
		if m.ID.String() != base {
			errs = append(errs, LoadError{Network: base, Err: fmt.Errorf("overlay: load %s: file holds network %s", name, m.ID)})
			continue
		}
		out = append(out, m)
	}
	return out, errs
}

// RemoveNetworkFile deletes the saved file of a network that could not be
// loaded (name as in LoadError.Network).
func RemoveNetworkFile(stateDir, name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("overlay: bad network file name %q", name)
	}
	err := os.Remove(filepath.Join(networksDir(stateDir), name+".json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("overlay: remove: %w", err)
	}
	return nil
}

// RemoveMembership deletes the saved state of network id (on leave).
func RemoveMembership(stateDir string, id NetworkID) error {
	err := os.Remove(NetworkFile(stateDir, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("overlay: remove: %w", err)
	}
	return nil
}
