#include "sample/kernel.h"
