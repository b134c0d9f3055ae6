OK_FORMAT = True

test = {   'name': 'q2',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> _ = torch.manual_seed(0)\n'
                                               '>>> model = tiny_demucs()\n'
                                               '>>> sources = 0.1 * torch.randn(2, 4, 2, model.valid_length(2000))\n'
                                               '>>> before = [p.detach().clone() for p in model.parameters()]\n'
                                               '>>> loss = training_step(model, sources, torch.optim.Adam(model.parameters(), lr=0.0003))\n'
                                               ">>> assert isinstance(loss, float) and loss > 0, f'expected a positive float, got {loss!r}'\n"
                                               ">>> assert any((not torch.equal(b, p) for b, p in zip(before, model.parameters()))), 'the optimizer must take a step'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
