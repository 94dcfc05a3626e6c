package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
)

// networksDir is where joined networks live under a state directory.
func networksDir(stateDir string) string { return filepath.Join(stateDir, "networks") }

// NetworkFile is the path of network id's state under stateDir.
func NetworkFile(stateDir string, id netrec.NetworkID) string {
	return filepath.Join(networksDir(stateDir), id.String()+".json")
}

// SaveMembership writes m to NetworkFile(stateDir, m.ID) atomically with
// mode 0600, creating the directory (0700) if needed.
func SaveMembership(stateDir string, m *vswitch.Membership) error {
	b, err := m.MarshalState()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(NetworkFile(stateDir, m.ID), b, 0o600)
}

// LoadMembership reads one saved network (see vswitch.UnmarshalState).
func LoadMembership(path string) (*vswitch.Membership, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("overlay: load: %w", err)
	}
	return vswitch.UnmarshalState(path, b)
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
func LoadMemberships(stateDir string) ([]*vswitch.Membership, []LoadError) {
	dir := networksDir(stateDir)
	atomicfile.RemoveStale(dir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []LoadError{{Network: "*", Err: fmt.Errorf("overlay: load: %w", err)}}
	}
	var out []*vswitch.Membership
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
func RemoveMembership(stateDir string, id netrec.NetworkID) error {
	err := os.Remove(NetworkFile(stateDir, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("overlay: remove: %w", err)
	}
	return nil
}
