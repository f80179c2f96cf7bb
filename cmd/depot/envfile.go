package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/depotcc/depot/ui/auth"
)

// envFileHeader opens /etc/default/depot.
const envFileHeader = `# /etc/default/depot: the settings of the depot service. depot.service reads
# this file (EnvironmentFile=), and every setting of "depot serve" can be given
# here as DEPOT_<FLAG_NAME>. Each one is below, commented out, with its help
# and its default: uncomment a line, change the value, then
#   systemctl restart depot
# The unit's command line (ExecStart) wins over this file. The file is mode
# 600 (root): secrets such as DEPOT_PAYROLL_SECRET may go here.
#
# Made by "depot env-file", which prints this for the version installed:
# after an upgrade, compare it with this file to see new settings.
`

// envFileNotes says more about a setting where the unit changes its sense.
var envFileNotes = map[string]string{
	"data": "The unit sets --data /var/lib/depot on its command line (StateDirectory=depot), which wins over\n" +
		"this line: to move the data, override ExecStart in a drop-in (systemctl edit depot).",
}

// envOnly are the settings of `depot serve` that have no flag (a flag
// would show in ps).
var envOnly = []struct{ key, help string }{
	{"DEPOT_ADMIN_PASSWORD", fmt.Sprintf("password of user admin, set at first start only (at least %d characters); unset: one is\n"+
		"generated and logged once (journalctl -u depot | grep -i password)", auth.MinPasswordLen)},
	{"DEPOT_DEMO_PASSWORD", fmt.Sprintf("with --demo: password of the demo's user dispatcher (at least %d characters); unset: one is\n"+
		"generated and logged at each start", auth.MinPasswordLen)},
	// Read by the Go runtime, not by a flag; gcpace stands aside for them.
	{"GOGC", "the Go collector's GOGC; unset: depot paces its collector by its allocation rate (fewer\n" +
		"cycles under load, up to a 256 MiB heap or an eighth of a smaller machine's memory; a tighter heap\n" +
		"when quiet); set either this or GOMEMLIMIT and the Go runtime's own rule applies instead"},
	{"GOMEMLIMIT", "the Go runtime's soft memory limit (e.g. 512MiB); setting it also turns off depot's pacing"},
}

// envKey is the environment variable of a flag (envFlags reads it).
func envKey(flagName string) string {
	return "DEPOT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// writeEnvFile writes /etc/default/depot: every setting of `depot serve`,
// from its flag set, as a commented line with its help and default.
func writeEnvFile(w io.Writer) error {
	var b strings.Builder
	b.WriteString(envFileHeader)
	m := NewMain(io.Discard)
	m.flagSet().VisitAll(func(f *flag.Flag) {
		b.WriteString("\n")
		comment(&b, "--"+f.Name+": "+f.Usage)
		if n := envFileNotes[f.Name]; n != "" {
			comment(&b, n)
		}
		fmt.Fprintf(&b, "#%s=%s\n", envKey(f.Name), f.DefValue)
	})
	for _, e := range envOnly {
		b.WriteString("\n")
		comment(&b, e.help)
		fmt.Fprintf(&b, "#%s=\n", e.key)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// comment writes text as comment lines folded at 78 columns (the line
// breaks of a flag's help are for -h's layout: here the words flow).
func comment(b *strings.Builder, text string) {
	col := 0
	b.WriteString("#")
	for _, word := range strings.Fields(text) {
		if col > 0 && col+1+len(word) > 76 {
			b.WriteString("\n#")
			col = 0
		}
		b.WriteString(" " + word)
		col += 1 + len(word)
	}
	b.WriteString("\n")
}

func runEnvFile(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot env-file", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: depot env-file\n\nPrints /etc/default/depot: every setting of \"depot serve\" as a commented\n"+
			"DEPOT_* line with its help and default.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return writeEnvFile(stdout)
}
