#include "testutil.h"

#include <CUnit/Basic.h>
#include <stdio.h>

int tu_run_suite(const char *suite_name, const tu_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        goto fail;
    for (const tu_test *t = tests; t->name; t++)
        if (!CU_add_test(suite, t->name, t->fn))
            goto fail;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    /* A suite that ran nothing proves nothing. */
    return (failed == 0 && ran > 0) ? 0 : 1;
fail:
    fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
}
