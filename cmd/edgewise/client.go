package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/apiclient"
)

const defaultServer = "http://127.0.0.1:8080"

// addClientFlags adds the persistent flags every API client command reads.
func addClientFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String("server", "", "API base URL (env EDGEWISE_SERVER, default "+defaultServer+")")
	pf.String("token", "", "admin API token (env EDGEWISE_TOKEN, default: read DATA/admin.token)")
	pf.String("data", "", "data directory (env EDGEWISE_DATA, default ./data)")
}

// dataDir resolves --data, then EDGEWISE_DATA, then ./data.
func dataDir(cmd *cobra.Command) string {
	if d, _ := cmd.Flags().GetString("data"); d != "" {
		return d
	}
	if d := os.Getenv("EDGEWISE_DATA"); d != "" {
		return d
	}
	return "./data"
}

// clientFromCmd builds an API client from flags, environment or the local
// data directory.
func clientFromCmd(cmd *cobra.Command) (*apiclient.Client, error) {
	server, _ := cmd.Flags().GetString("server")
	if server == "" {
		server = os.Getenv("EDGEWISE_SERVER")
	}
	if server == "" {
		server = defaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	token, _ := cmd.Flags().GetString("token")
	if token == "" {
		token = os.Getenv("EDGEWISE_TOKEN")
	}
	if token == "" {
		path := filepath.Join(dataDir(cmd), "admin.token")
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, usageError(fmt.Errorf("no API token: pass --token, set EDGEWISE_TOKEN, or run where %s exists", path))
			}
			return nil, fmt.Errorf("read API token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return apiclient.New(server, token), nil
}

// usageError marks an error as the user's (exit code 2).
func usageError(err error) error { return &exitError{code: 2, err: err} }
