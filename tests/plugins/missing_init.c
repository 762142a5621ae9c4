/* Declares its version but exports no entry point. */
#include "nn.h"

NN_PLUGIN_EXPORT_VERSION;

NN_PLUGIN_EXPORT int some_other_function(void);
NN_PLUGIN_EXPORT int some_other_function(void)
{
    return 0;
}
