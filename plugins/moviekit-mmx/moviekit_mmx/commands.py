def add_commands(cli):
    pass
