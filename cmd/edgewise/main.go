// Command edgewise is the Edgewise IoT platform in one binary: the server
// (`serve`), the edge agent, and the CLI clients of the HTTP API.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "edgewise",
		Short:         "Edgewise: MQTT broker, device registry, time-series store and rules in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addClientFlags(root)
	root.AddCommand(
		newServeCmd(),
		newThingsCmd(),
		newRulesCmd(),
		newQueryCmd(),
		newSimulateCmd(),
		newBenchCmd(),
		newStorageCmd(),
		newVersionCmd(),
	)
	root.AddCommand(newShadowCmd(), newCommandsCmd(), newJobsCmd())
	root.AddCommand(newTypesCmd(), newGroupsCmd(), newSearchCmd(), newTokensCmd(), newAuditCmd(), newApplyCmd(), newExportCmd())
	root.AddCommand(newCertsCmd(), newCAsCmd(), newPoliciesCmd())
	root.AddCommand(newAgentCmd(), newAgentsCmd())
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "edgewise:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
