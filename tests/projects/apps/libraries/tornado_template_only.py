"""Only tornado's template engine: no IOLoop, no need."""
from tornado import template

print(template.Template("{{ x }}").generate(x=1))
