// Package config owns Edgewise's configuration: the defaults that work with
// no file, the YAML file format, the EDGEWISE_* environment variables, and
// validation. Precedence, lowest first: defaults, file, environment, flags
// (flags are applied by the command after Load).
package config
