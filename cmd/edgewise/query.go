package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/apiclient"
)

func newQueryCmd() *cobra.Command {
	var q apiclient.TelemetryQuery
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "query NAME",
		Short: "Query a thing's telemetry, raw or aggregated in windows",
		Long: `Query a thing's telemetry.

Times are RFC 3339, "now", or relative such as -1h, -30m, -7d. With --every
the values are aggregated in windows aligned to the epoch and labelled by
the window's end (Flux aggregateWindow); empty windows are left out.`,
		Example: `  edgewise query sensor-1 --field temperature --start -1h --every 1m --fn mean`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			res, err := c.Telemetry(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tFIELD\tVALUE")
			n := 0
			for _, s := range res.Series {
				for _, p := range s.Points {
					fmt.Fprintf(tw, "%s\t%s\t%v\n", p.Time.UTC().Format(time.RFC3339Nano), s.Field, p.Value)
					n++
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no data for %s between %s and %s\n", args[0], res.Start.Format(time.RFC3339), res.Stop.Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Field, "field", "", "field name (default: all fields)")
	f.StringVar(&q.Start, "start", "-1h", "start time")
	f.StringVar(&q.Stop, "stop", "", "stop time (default now)")
	f.StringVar(&q.Every, "every", "", "window length, e.g. 1m (default: raw points)")
	f.StringVar(&q.Fn, "fn", "", "aggregate: mean, sum, min, max, count, first, last (default mean with --every)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many points per series")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
