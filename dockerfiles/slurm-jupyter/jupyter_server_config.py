# JupyterLab's one shared token identifies no user: jupyter_server names a token session "Anonymous <moon>" with a
# random id, and jupyterlab-slurm filters its Job History by that name (`sacct -u <random id>`: "Invalid user id").
# Name the session after the Unix user the server runs as (jovyan), which is whom Slurm runs its jobs for.
import getpass

from jupyter_server.auth.identity import IdentityProvider, User


class UnixUserIdentityProvider(IdentityProvider):
    def generate_anonymous_user(self, handler):
        name = getpass.getuser()
        return User(username=name, name=name, display_name=name, initials=name[:1].upper())


c.ServerApp.identity_provider_class = UnixUserIdentityProvider  # noqa: F821 (c: the config object)
