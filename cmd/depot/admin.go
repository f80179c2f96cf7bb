package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/depotcc/depot/ui/client"
)

// The admin commands talk to the running depot over its API: the data
// directory is locked by the server, and the API is where roles are checked.

func adminClient(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*client.Client, error) {
	api := fs.String("http", "localhost:8080", "HTTP address of the depot (http://… or https://…)")
	user := fs.String("admin-user", "admin", "admin user (password: DEPOT_ADMIN_PASSWORD)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := envFlags(fs); err != nil {
		return nil, err
	}
	pw := os.Getenv("DEPOT_ADMIN_PASSWORD")
	if pw == "" {
		return nil, errors.New("set DEPOT_ADMIN_PASSWORD to the password of " + *user)
	}
	c := client.New(*api)
	if err := c.Login(ctx, *user, pw); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", *user, err)
	}
	return c, nil
}

func printJSON(w io.Writer, v any) {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	_ = e.Encode(v)
}

const userUsage = `Usage:
  depot user add --username NAME [--role dispatcher|admin]   (password read from stdin)
  depot user list
Flags of every subcommand: --http ADDR --admin-user NAME; DEPOT_ADMIN_PASSWORD is the admin's password.
`

// runUser: depot user add|list.
func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errors.New("depot user: add or list?")
	}
	fs := flag.NewFlagSet("depot user "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "add":
		name := fs.String("username", "", "the new user's name")
		role := fs.String("role", "dispatcher", "dispatcher or admin")
		c, err := adminClient(ctx, fs, args[1:], stderr)
		if err != nil {
			return err
		}
		if *name == "" {
			return errors.New("--username is required")
		}
		fmt.Fprintf(stderr, "password for %s: ", *name)
		pw, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && pw == "" {
			return errors.New("no password on stdin")
		}
		var out any
		if err := c.Do(ctx, "POST", "/api/v1/users", map[string]string{
			"username": *name, "password": strings.TrimRight(pw, "\r\n"), "role": *role}, &out); err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	case "list":
		c, err := adminClient(ctx, fs, args[1:], stderr)
		if err != nil {
			return err
		}
		var out any
		if err := c.Do(ctx, "GET", "/api/v1/users", nil, &out); err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	}
	fmt.Fprint(stderr, userUsage)
	return fmt.Errorf("depot user: unknown subcommand %q", args[0])
}

const deviceUsage = `Usage:
  depot device add --driver ID [--name TEXT]   issue a handheld credential (prints its token once)
  depot device revoke --driver ID              revoke it; a live session is disconnected
  depot device list
Flags of every subcommand: --http ADDR --admin-user NAME; DEPOT_ADMIN_PASSWORD is the admin's password.
`

// runDevice: depot device add|revoke|list.
func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deviceUsage)
		return errors.New("depot device: add, revoke or list?")
	}
	fs := flag.NewFlagSet("depot device "+args[0], flag.ContinueOnError)
	var driver, name *string
	if args[0] == "add" || args[0] == "revoke" {
		driver = fs.String("driver", "", "driver id")
		if args[0] == "add" {
			name = fs.String("name", "", "a label for the handheld")
		}
	}
	switch args[0] {
	case "add", "revoke", "list":
	default:
		fmt.Fprint(stderr, deviceUsage)
		return fmt.Errorf("depot device: unknown subcommand %q", args[0])
	}
	c, err := adminClient(ctx, fs, args[1:], stderr)
	if err != nil {
		return err
	}
	if driver != nil && *driver == "" {
		return errors.New("--driver is required")
	}
	var out any
	switch args[0] {
	case "add":
		err = c.Do(ctx, "POST", "/api/v1/devices", map[string]string{"driverId": *driver, "name": *name}, &out)
	case "revoke":
		err = c.Do(ctx, "DELETE", "/api/v1/devices/"+*driver, nil, nil)
		out = map[string]string{"revoked": *driver}
	case "list":
		err = c.Do(ctx, "GET", "/api/v1/devices", nil, &out)
	}
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}
