"""`motif experiment`: a declared grid of conditions × seeds, each cell trained and evaluated alike."""
