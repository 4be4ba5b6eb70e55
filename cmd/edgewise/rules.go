package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Manage rules (SQL over MQTT topics with actions)",
	}
	cmd.AddCommand(newRulesCreateCmd(), newRulesListCmd(), newRulesGetCmd(), newRulesDeleteCmd(),
		newRulesEnableCmd(true), newRulesEnableCmd(false), newRulesStatsCmd(), newRulesApplyCmd())
	return cmd
}

// actionFlags are the repeatable --action/--action-json flags.
type actionFlags struct {
	kv, js       []string
	errKV, errJS string
}

func (f *actionFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.kv, "action", nil, "action as KEY=VALUE,... e.g. 'type=republish,topic=alerts/${device},qos=1' (repeatable; nested keys like headers.X-Key=v)")
	fl.StringArrayVar(&f.js, "action-json", nil, "action as a JSON object (repeatable)")
	fl.StringVar(&f.errKV, "error-action", "", "error action as KEY=VALUE,...")
	fl.StringVar(&f.errJS, "error-action-json", "", "error action as a JSON object")
}

func (f *actionFlags) specs() ([]action.Spec, *action.Spec, error) {
	var out []action.Spec
	for _, s := range f.kv {
		sp, err := parseActionKV(s)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, sp)
	}
	for _, s := range f.js {
		sp, err := decodeSpec([]byte(s))
		if err != nil {
			return nil, nil, fmt.Errorf("--action-json: %w", err)
		}
		out = append(out, sp)
	}
	var ea *action.Spec
	switch {
	case f.errKV != "" && f.errJS != "":
		return nil, nil, fmt.Errorf("give --error-action or --error-action-json, not both")
	case f.errKV != "":
		sp, err := parseActionKV(f.errKV)
		if err != nil {
			return nil, nil, err
		}
		ea = &sp
	case f.errJS != "":
		sp, err := decodeSpec([]byte(f.errJS))
		if err != nil {
			return nil, nil, fmt.Errorf("--error-action-json: %w", err)
		}
		ea = &sp
	}
	return out, ea, nil
}

func decodeSpec(b []byte) (action.Spec, error) {
	var sp action.Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sp); err != nil {
		return sp, err
	}
	return sp, nil
}

// splitTopLevel splits s at commas outside ${...}.
func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}' && depth > 0:
			depth--
		case s[i] == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// parseActionKV turns 'type=webhook,url=...,headers.X=1' into a Spec.
func parseActionKV(s string) (action.Spec, error) {
	obj := map[string]any{}
	for _, kv := range splitTopLevel(s) {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return action.Spec{}, fmt.Errorf("--action %q: %q is not KEY=VALUE", s, kv)
		}
		if group, sub, nested := strings.Cut(k, "."); nested {
			m, _ := obj[group].(map[string]any)
			if m == nil {
				m = map[string]any{}
				obj[group] = m
			}
			m[sub] = v
			continue
		}
		switch k {
		case "qos", "queue_size", "batch_size", "max_retries", "max_bytes":
			n, err := strconv.Atoi(v)
			if err != nil {
				return action.Spec{}, fmt.Errorf("--action %q: %s must be an integer", s, k)
			}
			obj[k] = n
		case "retain", "jetstream":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return action.Spec{}, fmt.Errorf("--action %q: %s must be true or false", s, k)
			}
			obj[k] = b
		default:
			obj[k] = v
		}
	}
	b, _ := json.Marshal(obj)
	sp, err := decodeSpec(b)
	if err != nil {
		return sp, fmt.Errorf("--action %q: %w", s, err)
	}
	return sp, nil
}

func newRulesCreateCmd() *cobra.Command {
	var sqlText, desc, eventTime string
	var disabled, asJSON bool
	var af actionFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a rule",
		Example: `  edgewise rules create hot --sql "SELECT data.temp AS temp, topic(2) AS device FROM 'devices/+/telemetry' WHERE data.temp > 50" \
    --action 'type=republish,topic=devices/${device}/alerts,qos=1'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(sqlText) == "" {
				return usageError(fmt.Errorf("--sql is required"))
			}
			acts, ea, err := af.specs()
			if err != nil {
				return usageError(err)
			}
			if len(acts) == 0 {
				return usageError(fmt.Errorf("give at least one --action or --action-json"))
			}
			enabled := !disabled
			var opts *rules.RuleOptions
			switch eventTime {
			case "":
			case "payload", "processing":
				opts = &rules.RuleOptions{EventTime: eventTime}
			default:
				return usageError(fmt.Errorf("--event-time %q: want payload or processing", eventTime))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			r, err := c.CreateRule(cmd.Context(), rules.Definition{Name: args[0], Description: desc, SQL: sqlText, Actions: acts, ErrorAction: ea, Options: opts, Enabled: &enabled})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			state := "enabled"
			if !r.Enabled {
				state = "disabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created rule %s (%s, %d actions).\n", r.Name, state, len(r.Actions))
			return nil
		},
	}
	cmd.Flags().StringVar(&sqlText, "sql", "", "the rule's SQL (required)")
	cmd.Flags().StringVar(&desc, "description", "", "description")
	cmd.Flags().BoolVar(&disabled, "disabled", false, "create the rule disabled")
	cmd.Flags().StringVar(&eventTime, "event-time", "", "windows use the payload's timestamp (payload, the default) or the arrival time (processing)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	af.add(cmd)
	return cmd
}

func newRulesListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			rs, err := c.ListRules(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rs)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tENABLED\tACTIONS\tSQL")
			for _, r := range rs {
				types := make([]string, len(r.Actions))
				for i, a := range r.Actions {
					types[i] = a.Type
				}
				sqlText := strings.Join(strings.Fields(r.SQL), " ")
				if len(sqlText) > 80 {
					sqlText = sqlText[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", r.Name, r.Enabled, strings.Join(types, ","), sqlText)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRulesGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a rule as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			r, err := c.GetRule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}
}

func newRulesDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a rule (its actions first deliver what they hold)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteRule(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted rule %s.\n", args[0])
			return nil
		},
	}
}

func newRulesEnableCmd(enable bool) *cobra.Command {
	verb, past := "disable", "Disabled"
	if enable {
		verb, past = "enable", "Enabled"
	}
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a rule",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if _, err := c.SetRuleEnabled(cmd.Context(), args[0], enable); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s rule %s.\n", past, args[0])
			return nil
		},
	}
}

func newRulesStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats NAME",
		Short: "Show a rule's counters (matched, passed, errors, dropped, latency, per action)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			raw, err := c.RuleStats(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
}

func newRulesApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f rules.yaml",
		Short: "Create or update the rules of a YAML file (idempotent; other rules are left alone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError(fmt.Errorf("-f FILE is required ('-' reads standard input)"))
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(cmd.InOrStdin())
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return usageError(fmt.Errorf("read %s: %w", file, err))
			}
			defs, err := rules.ParseFile(b)
			if err != nil {
				return usageError(fmt.Errorf("%s: %w", file, err))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			res, err := c.ApplyRules(cmd.Context(), defs)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, n := range res.Created {
				fmt.Fprintf(out, "rule %s created\n", n)
			}
			for _, n := range res.Updated {
				fmt.Fprintf(out, "rule %s updated\n", n)
			}
			for _, n := range res.Unchanged {
				fmt.Fprintf(out, "rule %s unchanged\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML rules file ('-' for standard input)")
	return cmd
}
