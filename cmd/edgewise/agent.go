package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/edge/agent"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the edge agent: local broker, local rules and store-and-forward uplink to a cloud server",
		Long: `Run Edgewise at the edge of a site (docs/edge.md).

The agent runs a local MQTT broker for the site's devices, the rules engine
with local rules, and an MQTT 5 uplink to a cloud 'edgewise serve' where the
agent is a thing. Messages for the cloud pass through a disk-backed spool
(DATA/spool) and leave it only when the cloud acknowledged them, so they
survive outages, restarts and kill -9. The cloud can push the agent's rule
set (edgewise agents rules set NAME -f rules.yaml).

Settings come from defaults, then --config FILE (YAML), then EDGEWISE_*
environment variables (EDGEWISE_AGENT_NAME, EDGEWISE_DATA,
EDGEWISE_MQTT_ADDR, EDGEWISE_HTTP_ADDR, EDGEWISE_UPLINK_BROKER,
EDGEWISE_UPLINK_USERNAME, EDGEWISE_UPLINK_PASSWORD, EDGEWISE_SPOOL_FSYNC,
EDGEWISE_UPLINK_CATCH_UP_RATE, EDGEWISE_AGENT_HTTP_TOKEN, EDGEWISE_LOG_*),
then flags. SIGINT or SIGTERM stops the agent cleanly (exit 0).`,
		Args: cobra.NoArgs,
		RunE: runAgent,
	}
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file (see examples/agent.yaml)")
	f.String("name", "", "the agent's thing name in the cloud")
	f.String("mqtt-addr", "", "local MQTT listen address (default :1883)")
	f.String("http-addr", "", "status HTTP listen address (default 127.0.0.1:8081)")
	f.String("uplink", "", "cloud broker, e.g. tls://cloud.example.com:8883")
	f.String("log-level", "", "debug, info, warn or error (default info)")
	f.String("log-format", "", "text or json (default text)")
	return cmd
}

func runAgent(cmd *cobra.Command, _ []string) error {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := agent.LoadUnvalidated(path, os.Getenv)
	if err != nil {
		return usageError(err)
	}
	f := cmd.Flags()
	if f.Changed("data") {
		cfg.DataDir, _ = f.GetString("data")
	}
	for flag, dst := range map[string]*string{
		"name": &cfg.Name, "mqtt-addr": &cfg.MQTT.Addr, "http-addr": &cfg.HTTP.Addr, "uplink": &cfg.Uplink.Broker,
		"log-level": &cfg.Log.Level, "log-format": &cfg.Log.Format,
	} {
		if f.Changed(flag) {
			*dst, _ = f.GetString(flag)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageError(err)
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil {
		return fmt.Errorf("agent stopped with an error: %w", err)
	}
	return nil
}

func newAgentsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Edge agents known to the server: their central rule sets and reported status",
	}
	rulesCmd := &cobra.Command{Use: "rules", Short: "Get or set an agent's central rule set"}
	rulesCmd.AddCommand(newAgentsRulesGetCmd(), newAgentsRulesSetCmd())
	cmd.AddCommand(newAgentsListCmd(), newAgentsGetCmd(), newAgentsDeleteCmd(), rulesCmd)
	return cmd
}

func newAgentsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List agents with the rule set version set in the cloud and the one they run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			agents, err := c.ListAgents(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESIRED\tRUNNING\tIN SYNC\tLAST STATUS\tERROR")
			for _, a := range agents {
				running, last, errText := "-", "-", ""
				if a.Status != nil {
					running = fmt.Sprint(a.Status.RulesVersion)
					errText = a.Status.RulesError
				}
				if a.StatusAt != nil {
					last = a.StatusAt.Format("2006-01-02T15:04:05Z07:00")
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%s\t%s\n", a.Name, a.RulesVersion, running, a.InSync, last, errText)
			}
			return tw.Flush()
		},
	}
}

func newAgentsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an agent (desired rule set, reported status) as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			a, err := c.GetAgent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), a)
		},
	}
}

func newAgentsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Forget an agent's rule set and status (the agent keeps running its rules)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteAgent(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s deleted\n", args[0])
			return nil
		},
	}
}

func newAgentsRulesGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Print an agent's central rule set (JSON, with its version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			rs, err := c.GetAgentRules(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), rs)
		},
	}
}

func newAgentsRulesSetCmd() *cobra.Command {
	var file string
	var ifVersion int64
	cmd := &cobra.Command{
		Use:   "set NAME -f rules.yaml",
		Short: "Replace an agent's central rule set (a rules file) and push it to the agent",
		Long: `Store a new version of the agent's rule set and publish it, retained, on
devices/NAME/agent/rules. The agent applies it (rules of the previous
version that are not in the file are deleted) and reports the version it
runs; see 'edgewise agents get NAME'. The file has the rules file format
('rules:' followed by rule definitions); an empty list removes every
central rule.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError(fmt.Errorf("-f FILE is required"))
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(cmd.InOrStdin())
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return usageError(fmt.Errorf("read rules: %w", err))
			}
			defs, err := rules.ParseFile(b)
			if err != nil {
				return usageError(fmt.Errorf("%s: %w", file, err))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var iv *int64
			if cmd.Flags().Changed("if-version") {
				iv = &ifVersion
			}
			a, err := c.SetAgentRules(cmd.Context(), args[0], defs, iv)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s: rule set version %d with %d rules published\n", a.Name, a.RulesVersion, len(a.Rules))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "rules file (YAML or JSON; - for stdin)")
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "fail unless the current version is this one")
	return cmd
}
