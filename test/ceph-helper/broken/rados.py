raise ImportError("librados.so.2: cannot open shared object file")
