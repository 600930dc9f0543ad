"""One module per command (or family of commands); each exports COMMANDS = [click commands]."""
