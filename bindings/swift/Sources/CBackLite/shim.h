/* The C API of BackLite, for the CBackLite module (see module.modulemap). */
#include <backlite.h>
