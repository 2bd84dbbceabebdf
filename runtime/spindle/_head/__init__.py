"""The head process: membership, the actor directory, named actors, jobs, KV."""
