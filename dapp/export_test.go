package dapp

// PrivateChain reports whether the process's private development chain
// runs, how many instances use it, and how many chains were started.
func PrivateChain() (running bool, users int, started int64) {
	running, users = privateChain.running()
	return running, users, privateChain.started.Load()
}
