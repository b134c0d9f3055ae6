OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> OWN = dict(allow=['demucs_course.model'])\n"
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> model = tiny_demucs()\n'
                                               '>>> sources = 0.1 * torch.randn(2, 4, 2, model.valid_length(2000))\n'
                                               '>>> before = [p.detach().clone() for p in model.parameters()]\n'
                                               '>>> optimizer = torch.optim.Adam(model.parameters(), lr=0.0003)\n'
                                               '>>> with own_work(**OWN):\n'
                                               '...     loss = training_step(model, sources, optimizer)\n'
                                               ">>> assert isinstance(loss, float) and loss > 0, f'expected a positive float, got {loss!r}'\n"
                                               ">>> assert any((not torch.equal(b, p) for b, p in zip(before, model.parameters()))), 'the optimizer must take a step'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
