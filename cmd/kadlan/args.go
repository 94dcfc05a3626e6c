package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// posArgs returns the positional arguments of c, after applying any of the
// command's flags that were written after them (`kadlan ping ADDR -c 5`):
// urfave/cli v2 stops parsing flags at the first positional argument, but
// users write flags anywhere. "--" ends flag parsing.
func posArgs(c *cli.Context) ([]string, error) {
	in := c.Args().Slice()
	var pos []string
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			pos = append(pos, in[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		f := lookupFlag(c.Command.Flags, name)
		if f == nil {
			return nil, userErrorf("%s: unknown flag %s (see kadlan %s --help)", c.Command.Name, a, c.Command.Name)
		}
		if _, isBool := f.(*cli.BoolFlag); isBool {
			if !hasVal {
				val = "true"
			}
		} else if !hasVal {
			if i+1 >= len(in) {
				return nil, userErrorf("%s: flag %s needs a value", c.Command.Name, a)
			}
			i++
			val = in[i]
		}
		if err := c.Set(f.Names()[0], val); err != nil {
			return nil, userErrorf("%s: bad value %q for %s: %v", c.Command.Name, val, a, err)
		}
	}
	return pos, nil
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// argsN returns exactly n positional arguments or a usage error.
func argsN(c *cli.Context, n int, usage string) ([]string, error) {
	pos, err := posArgs(c)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, userErrorf("usage: kadlan %s %s", c.Command.Name, usage)
	}
	return pos, nil
}
