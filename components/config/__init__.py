"""The stack configuration, as one declarative table of keys from which parsing, the list of known keys and the
README's configuration table are all derived.

- table.py: the table, every key's name, type, default, meaning and check (a new key is one field there);
- rules.py: the rules between keys;
- parsing.py: parse() and load(), raw config values in, a checked StackConfig out (the table, the rules, the chart);
- schema.py: the engine that reads the table (key(), the types, the walk over the dataclasses);
- readme.py: the README's generated sections (`python -m components.config --readme`).
"""

from components.config.parsing import load, parse
from components.config.readme import README, readme_with_tables, rows, type_name
from components.config.schema import REQUIRED
from components.config.table import KEYS, Components, Images, JupyterHub, StackConfig
from components.errors import ConfigError

__all__ = ["KEYS", "README", "REQUIRED", "Components", "ConfigError", "Images", "JupyterHub", "StackConfig", "load",
           "parse", "readme_with_tables", "rows", "type_name"]
