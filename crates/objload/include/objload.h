/* objload's C-callable layer (crates/objload/src/capi.rs). The functions live in the host executable
   (objrun, objsh, or any program linking the objload crate); loaded objects find them by name. */
#ifndef OBJLOAD_H
#define OBJLOAD_H

/* Loads an object or archive defining main, runs its constructors; main's address, or NULL. */
void *objload_load_program(const char *path);
/* Unloads a program loaded by objload_load_program (runs its destructors); 0, or -1. */
int objload_unload_program(void *entry);
/* Loads an object, or an archive as one library of all its members; 0, or -1. */
int objload_load_library(const char *path);
/* The address of a loaded library's global function, or NULL. Holds a reference on the library until
   objload_release_function(name). */
void *objload_find_library_function(const char *name);
/* Drops one reference taken by objload_find_library_function(name); 0, or -1 if none is held. */
int objload_release_function(const char *name);
/* Unloads a library (runs its destructors, releases its memory); -1 while something still needs it. */
int objload_unload_library(const char *path);
/* Why the last failed call on this thread failed; valid until the next call on this thread. */
const char *objload_last_error(void);

#endif
