package push

// The tests' push services run on this machine.
func init() { allowLocalHTTP = true }
