package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"strings"
)

// readSecretFile reads a secret kept in a file (so that it shows neither in
// ps nor in the environment of the process): its text without the trailing
// newline. A file anyone on the machine may read is refused; one the group
// may read is accepted with a warning.
func readSecretFile(flag, path string) (secret, warning string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("--%s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("--%s %s: not a regular file", flag, path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", "", fmt.Errorf("--%s %s: readable by everyone (mode %04o); chmod 600 it", flag, path, fi.Mode().Perm())
	}
	if fi.Mode().Perm()&0o040 != 0 {
		warning = fmt.Sprintf("--%s %s is readable by its group (mode %04o); chmod 600 it", flag, path, fi.Mode().Perm())
	}
	if fi.Size() > 64<<10 {
		return "", "", fmt.Errorf("--%s %s: over 64 KiB, not a secret", flag, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("--%s: %w", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), warning, nil
}

// parseFeedCredentials reads a --cortex-credentials-file: one credential a
// line, blank lines and lines starting with # ignored. A line
// "Header-Name: value" (a header name, a colon and a space) is sent as that
// header, e.g. "Authorization: Bearer …" or "X-Api-Key: …"; any other line
// "user:password" is sent as HTTP Basic authentication (so a Basic password
// cannot start with a space). Errors name the line, never its content.
func parseFeedCredentials(text string) (http.Header, error) {
	h := http.Header{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("--cortex-credentials-file line %d: %s; want \"user:password\" or \"Header-Name: value\"", i+1, why)
		}
		if strings.ContainsAny(line, "\x00\r") {
			return nil, bad("control characters")
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, bad("no colon")
		}
		if strings.HasPrefix(rest, " ") && headerToken(name) {
			v := strings.TrimSpace(rest)
			if v == "" {
				return nil, bad("empty header value")
			}
			h.Add(textproto.CanonicalMIMEHeaderKey(name), v)
			continue
		}
		if name == "" || rest == "" {
			return nil, bad("empty user or password")
		}
		h.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(line)))
	}
	if len(h) == 0 {
		return nil, errors.New("--cortex-credentials-file: no credential in it")
	}
	if len(h.Values("Authorization")) > 1 {
		return nil, errors.New("--cortex-credentials-file: more than one Authorization (a user:password line is one)")
	}
	return h, nil
}

func headerToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// loadSecretFiles reads --payroll-secret-file and --cortex-credentials-file
// into the configuration. Safe to call again (validate runs more than once
// in tests).
func (c *ServeConfig) loadSecretFiles() error {
	if c.PayrollSecretFile != "" && c.payrollFrom != c.PayrollSecretFile {
		if c.PayrollSecret != "" {
			return errors.New("--payroll-secret and --payroll-secret-file: give one of them")
		}
		s, warn, err := readSecretFile("payroll-secret-file", c.PayrollSecretFile)
		if err != nil {
			return err
		}
		if s == "" {
			return errors.New("--payroll-secret-file: the file is empty")
		}
		if warn != "" {
			c.warnings = append(c.warnings, warn)
		}
		c.PayrollSecret, c.payrollFrom = s, c.PayrollSecretFile
	}
	if c.CortexCredentialsFile != "" {
		if u := strings.ToLower(c.CortexURL); !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return errors.New("--cortex-credentials-file needs an http(s) --cortex-url")
		}
		s, warn, err := readSecretFile("cortex-credentials-file", c.CortexCredentialsFile)
		if err != nil {
			return err
		}
		h, err := parseFeedCredentials(s)
		if err != nil {
			return err
		}
		if warn != "" {
			c.warnings = append(c.warnings, warn)
		}
		c.feedHeader = h
	}
	return nil
}
