// Package apiclient is the Go client of Edgewise's HTTP API, used by the
// CLI and the load generators. API errors come back as *Error with the
// server's status, stable code and message.
package apiclient
