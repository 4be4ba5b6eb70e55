package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newShadowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shadow",
		Short: "Read and write device shadows (desired and reported state)",
	}
	var name string
	cmd.PersistentFlags().StringVar(&name, "name", "", "named shadow (default: the classic shadow)")

	get := &cobra.Command{
		Use:   "get THING",
		Short: "Print a shadow: state (desired, reported, delta), metadata, version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			raw, err := c.Shadow(cmd.Context(), args[0], name)
			if err != nil {
				return err
			}
			return printRaw(cmd, raw)
		},
	}

	var desired, reported, doc string
	var version int64
	update := &cobra.Command{
		Use:   "update THING",
		Short: "Update a shadow (a null value deletes a field)",
		Long: "Update a shadow with --desired and/or --reported JSON objects, or a whole AWS update\n" +
			"document with --doc (JSON, @FILE or - for stdin). --version makes the update conditional.",
		Example: `  edgewise shadow update sensor-1 --desired '{"led":"on"}'
  edgewise shadow update sensor-1 --name firmware --doc @update.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := shadowUpdateBody(desired, reported, doc, version)
			if err != nil {
				return usageError(err)
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			raw, err := c.UpdateShadow(cmd.Context(), args[0], name, body)
			if err != nil {
				return err
			}
			return printRaw(cmd, raw)
		},
	}
	update.Flags().StringVar(&desired, "desired", "", "desired state patch (JSON object, or null to clear)")
	update.Flags().StringVar(&reported, "reported", "", "reported state patch (JSON object, or null to clear)")
	update.Flags().StringVar(&doc, "doc", "", "whole update document: JSON, @FILE or - (stdin)")
	update.Flags().Int64Var(&version, "version", 0, "expected current version (optimistic locking)")

	del := &cobra.Command{
		Use:   "delete THING",
		Short: "Delete a shadow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			raw, err := c.DeleteShadow(cmd.Context(), args[0], name)
			if err != nil {
				return err
			}
			return printRaw(cmd, raw)
		},
	}
	cmd.AddCommand(get, update, del)
	return cmd
}

// shadowUpdateBody builds the update document from the flags.
func shadowUpdateBody(desired, reported, doc string, version int64) (json.RawMessage, error) {
	if doc != "" {
		if desired != "" || reported != "" || version != 0 {
			return nil, fmt.Errorf("--doc cannot be combined with --desired, --reported or --version")
		}
		b, err := readArg(doc)
		if err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("--doc is not valid JSON")
		}
		return b, nil
	}
	if desired == "" && reported == "" {
		return nil, fmt.Errorf("give --desired, --reported or --doc")
	}
	state := map[string]json.RawMessage{}
	for flag, v := range map[string]string{"desired": desired, "reported": reported} {
		if v == "" {
			continue
		}
		if !json.Valid([]byte(v)) || !(strings.HasPrefix(strings.TrimSpace(v), "{") || strings.TrimSpace(v) == "null") {
			return nil, fmt.Errorf("--%s must be a JSON object or null", flag)
		}
		state[flag] = json.RawMessage(v)
	}
	body := map[string]any{"state": state}
	if version != 0 {
		body["version"] = version
	}
	b, err := json.Marshal(body)
	return b, err
}

// readArg reads a flag value that may be @FILE or - (stdin).
func readArg(v string) ([]byte, error) {
	switch {
	case v == "-":
		return readAllStdin()
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", v[1:], err)
		}
		return b, nil
	}
	return []byte(v), nil
}

func readAllStdin() ([]byte, error) {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return b, nil
}

// printRaw pretty-prints a JSON answer.
func printRaw(cmd *cobra.Command, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err = cmd.OutOrStdout().Write(raw)
		return err
	}
	return printJSON(cmd.OutOrStdout(), v)
}
