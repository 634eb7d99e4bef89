"""Hard limits that keep every stage bounded in time, memory and stack depth.

Each limit is reported by name when crossed (see the E1xx/E2xx codes), so a user
knows which one and where.
"""

MAX_FILE_BYTES = 1 << 20        # 1 MiB of source
MAX_BRACKET_DEPTH = 64          # nested ( and [
MAX_EXPR_DEPTH = 160            # nested expression nodes of any kind
MAX_LAYERS = 100_000            # layers after expanding repeats and blocks
MAX_ERRORS = 50                 # diagnostics reported from one file
MAX_INT_DIGITS = 18             # an integer literal
MAX_CALL_DEPTH = 64             # nested block calls
MAX_FAMILY_MEMBERS = 4096       # members of a family checked or expanded
MAX_FAMILY_LAYERS = 200_000     # layers checked over all of a family's members: two
                                # networks at MAX_LAYERS (one at the limit, with a `?`)
