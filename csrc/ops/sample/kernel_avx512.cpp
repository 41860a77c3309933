#include "ops/sample/kernel.h"
