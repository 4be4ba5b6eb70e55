package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/policy"
)

func newPoliciesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "Manage authorization policies (AWS IoT policy documents)",
	}
	var file string
	create := &cobra.Command{
		Use:   "create NAME -f policy.json",
		Short: "Create a policy from a JSON document",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError(fmt.Errorf("-f FILE is required"))
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return usageError(fmt.Errorf("%s is not valid JSON", file))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if _, err := c.CreatePolicy(cmd.Context(), args[0], b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created policy %s.\n", args[0])
			return nil
		},
	}
	create.Flags().StringVarP(&file, "file", "f", "", "policy document (JSON)")
	cmd.AddCommand(create, newPolicyAttachCmd(true), newPolicyAttachCmd(false), newPoliciesListCmd(),
		&cobra.Command{
			Use:   "get NAME",
			Short: "Show a policy with its document and targets",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := clientFromCmd(cmd)
				if err != nil {
					return err
				}
				p, err := c.Policy(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), p)
			},
		},
		&cobra.Command{
			Use:   "delete NAME",
			Short: "Delete a policy that is attached to nothing",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := clientFromCmd(cmd)
				if err != nil {
					return err
				}
				if err := c.DeletePolicy(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted policy %s.\n", args[0])
				return nil
			},
		})
	return cmd
}

func newPolicyAttachCmd(attach bool) *cobra.Command {
	var thing, cert, group string
	use, short := "attach", "Attach a policy to a thing, a certificate or a thing group"
	if !attach {
		use, short = "detach", "Detach a policy from a thing, a certificate or a thing group"
	}
	cmd := &cobra.Command{
		Use:   use + " NAME --thing X | --cert ID | --group G",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var targets []policy.Target
			for _, t := range []policy.Target{{Kind: policy.TargetThing, Name: thing}, {Kind: policy.TargetCertificate, Name: cert}, {Kind: policy.TargetGroup, Name: group}} {
				if t.Name != "" {
					targets = append(targets, t)
				}
			}
			if len(targets) != 1 {
				return usageError(fmt.Errorf("give exactly one of --thing, --cert or --group"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if _, err := c.AttachPolicy(cmd.Context(), args[0], targets[0], attach); err != nil {
				return err
			}
			verb := "Attached"
			if !attach {
				verb = "Detached"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s policy %s: %s %s.\n", verb, args[0], targets[0].Kind, targets[0].Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&thing, "thing", "", "thing name")
	cmd.Flags().StringVar(&cert, "cert", "", "certificate id")
	cmd.Flags().StringVar(&group, "group", "", "thing group name")
	return cmd
}

func newPoliciesListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			ps, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%d\n", p.Name, p.Version)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
