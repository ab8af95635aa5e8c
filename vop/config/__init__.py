"""The config schema of every group, the checks run before a job, and the `${vop.*}` resolvers."""
from vop.config.resolvers import register_resolvers

# Every module that composes, stores or checks a config imports this package first: registering here
# gives each of them (and a Python API caller) the resolvers the config files name.
register_resolvers()
